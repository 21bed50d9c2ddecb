"""`uta-bench check`: exit 1 on a crafted regression, 0 on a pass, 2 on usage errors; JUnit parsed back."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from uta_bench.cli.main import main

CARD = """task: gate_photos
version: 1
type: classification
description: sample photos standing in for ImageNet-1K in the gate tests
dataset: {builtin: sample_photos, formats: [imagefolder]}
classes: folder
templates: ["a photo of a {c}."]
metrics: [top1, top5]
expected_samples: 24
paper: {table: "1", column: IN-1K}
"""


@pytest.fixture
def gate_env(tmp_path, monkeypatch, official_ckpt):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "gate_photos.yaml").write_text(CARD)
    monkeypatch.setenv("UTA_BENCH_TASKS", str(cards))
    ckpt, _ = official_ckpt("uta_tiny_p16", fmt="safetensors")
    return ckpt


def cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def craft_baseline(store, run_id, cand_run, correct1, value=None):
    """A baseline run on the same samples: candidate's rows/predictions with our own correct1."""
    from uta_bench.predictions import load_predictions, save_predictions
    from uta_bench.stats import wilson_interval
    from uta_bench.store import Metric, RunInfo

    preds = load_predictions(store, cand_run, "gate_photos")
    preds["correct1"] = np.asarray(correct1, dtype=np.int8)
    save_predictions(store, run_id, "gate_photos", preds)
    n = len(correct1)
    k = int(np.sum(correct1)) if value is None else round(value * n)
    store.write_task(RunInfo(run_id=run_id, model="uta_tiny"), "gate_photos",
                     [Metric("top1", k / n, n, *wilson_interval(k, n))])


def test_check_gate_end_to_end(gate_env, tmp_path, capsys):
    from uta_bench.store import ResultsStore

    ckpt = gate_env
    junit, js = tmp_path / "junit.xml", tmp_path / "check.json"
    # 1) a random-init tiny model gated against the paper's UTA-B/16 IN-1K cell (77.0): a real regression
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(ckpt), "--against", "paper",
                    "--paper-as", "uta_b16", "--tasks", "gate_photos", "--tolerance", "0.5",
                    "--junit", str(junit), "--json", str(js))
    assert code == 1, out
    assert "REGRESSION" in out and "FAIL" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("name") == "uta-bench check" and suite.get("failures") == "1" and suite.get("tests") == "1"
    case = suite.find("testcase")
    assert case.get("name") == "gate_photos/top1"
    failure = case.find("failure")
    assert failure is not None and "paper T1 UTA B/16@224 2B / IN-1K" in failure.get("message")
    report = json.loads(js.read_text())
    assert report["exit_code"] == 1 and report["verdicts"][0]["baseline"] == pytest.approx(0.77)
    v = report["verdicts"][0]
    assert v["delta"] == pytest.approx(v["candidate"] - 0.77) and v["ci_high"] < 0

    store = ResultsStore()
    (cand_run,) = report["candidate_runs"]
    rows = store.df(run_id=cand_run)
    correct = np.asarray(__import__("uta_bench.predictions", fromlist=["x"]).load_predictions(
        store, cand_run, "gate_photos")["correct1"])
    assert rows[rows.metric == "top1"].value.iloc[0] == pytest.approx(correct.mean())

    # 2) a generous tolerance (from a --config file) passes; the evaluation is re-used (no new run)
    cfg = tmp_path / "check.yaml"
    cfg.write_text("model: uta_tiny\nagainst: paper\npaper_as: uta_b16\ntolerance: 100\ntasks: [gate_photos]\n")
    code, out = cli(capsys, "check", "--config", str(cfg), "--checkpoint", str(ckpt), "--json", str(js))
    assert code == 0, out
    assert json.loads(js.read_text())["candidate_runs"] == [cand_run]
    assert store.df().run_id.nunique() == 1

    # 3) against a run on the same samples, identical outcomes: pass (paired CI from the predictions)
    craft_baseline(store, "base_same", cand_run, correct)
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(ckpt), "--against", "base_same",
                    "--tasks", "gate_photos", "--junit", str(junit), "--json", str(js))
    assert code == 0, out
    verdicts = {v["metric"]: v for v in json.loads(js.read_text())["verdicts"]}
    assert verdicts["top1"]["status"] == "pass" and verdicts["top1"]["noise"] == "paired-bootstrap"
    assert verdicts["top5"]["status"] == "missing"        # the crafted baseline has no top5 row
    assert verdicts["mean_per_class_recall"]["status"] == "missing"     # ... nor a mean_per_class_recall row
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("skipped") == "2"

    # 4) one sample worse than a baseline: beyond the 0.5-point tolerance but within noise -> not failing
    flip = correct.copy()
    i = int(np.argmin(flip))
    flip[i] = 1
    craft_baseline(store, "base_one_better", cand_run, flip)
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(ckpt), "--against",
                    "base_one_better", "--tasks", "gate_photos", "--metrics", "top1", "--json", str(js))
    assert code == 0, out
    (v,) = json.loads(js.read_text())["verdicts"]
    assert v["status"] == "noise" and v["delta"] == pytest.approx(-1 / 24) and v["ci_high"] >= 0

    # 5) a baseline that got every sample right: regression beyond tolerance and noise (paired), exit 1
    craft_baseline(store, "base_perfect", cand_run, np.ones_like(correct))
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(ckpt), "--against",
                    "base_perfect", "--tasks", "gate_photos", "--metrics", "top1", "--json", str(js))
    assert code == 1, out
    (v,) = json.loads(js.read_text())["verdicts"]
    assert v["status"] == "regression" and v["p_value"] < 0.01 and v["ci_high"] < 0

    # 6) against a model name: its latest rows (no predictions -> Wilson CIs combined)
    from uta_bench.stats import wilson_interval
    from uta_bench.store import Metric, RunInfo

    store.write_task(RunInfo(run_id="b16_run", model="uta_b16"), "gate_photos",
                     [Metric("top1", 0.9, 1000, *wilson_interval(900, 1000))])
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(ckpt), "--against", "uta_b16",
                    "--tasks", "gate_photos", "--metrics", "top1", "--json", str(js))
    assert code == 1, out
    (v,) = json.loads(js.read_text())["verdicts"]
    assert v["noise"] == "wilson-combined" and v["baseline_ref"] == "model b16_run"

    # 7) a new task card version invalidates the cached evaluation: a fresh run
    import os
    from pathlib import Path

    card = Path(os.environ["UTA_BENCH_TASKS"]) / "gate_photos.yaml"
    card.write_text(card.read_text().replace("version: 1", "version: 2"))
    code, out = cli(capsys, "check", "--config", str(cfg), "--checkpoint", str(ckpt), "--json", str(js))
    assert code == 0, out
    (new_run,) = json.loads(js.read_text())["candidate_runs"]
    assert new_run != cand_run and store.df(run_id=new_run).task_version.unique().tolist() == ["2"]


@pytest.mark.parametrize("args,needle", [
    (["--against", "no_such_run_or_model", "--tasks", "gate_photos"], "neither 'paper', a run id"),
    (["--against", "paper"], "--tasks"),
    (["--against", "paper", "--tasks", "gate_photo"], "unknown task 'gate_photo'"),
    (["--against", "paper", "--tasks", "gate_photos", "--tolerance", "-1"], "--tolerance must be >= 0"),
])
def test_check_usage_errors_exit_2(gate_env, capsys, args, needle):
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(gate_env), *args)
    assert code == 2, out
    assert needle in out and "Traceback" not in out


def test_check_missing_checkpoint_and_no_paper_row(gate_env, tmp_path, capsys):
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(tmp_path / "nope.pt"),
                    "--tasks", "gate_photos")
    assert code == 2 and "does not exist" in out
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(gate_env), "--tasks", "gate_photos")
    assert code == 2 and "has no paper row" in out and "--paper-as" in out


def test_ci_recipes_are_valid(capsys):
    from pathlib import Path

    from uta_bench.cli.check import load_config
    from uta_bench.paper.mapping import canonical_metric
    from uta_bench.paper.rows import load_paper_rows
    from uta_bench.registry import get_card
    from uta_bench.taskcards import expand

    paper_metrics = set(load_paper_rows().metric)
    recipes = sorted((Path(__file__).parent.parent / "recipes" / "ci").glob("*.yaml"))
    assert recipes
    for f in recipes:
        cfg = load_config(str(f))
        assert get_card(cfg["model"]).paper is not None
        assert expand(cfg["tasks"])
        assert {canonical_metric(m) for m in cfg["metrics"]} <= paper_metrics


def test_bad_check_config_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: uta_tiny\ntolerence: 1\n")
    code, out = cli(capsys, "check", "--config", str(cfg), "--random-init", "--tasks", "sample_photos")
    assert code == 2 and "unknown key 'tolerence'" in out
