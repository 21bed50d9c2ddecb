"""--output-path (lm-eval results JSON), --log-samples (JSONL), clip_benchmark metric names,
mean_per_class_recall and lm-eval's stderr, against independent computations."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from zs_helpers import TEMPLATES, cfg, rows, tiny, tiny_on_one_thread, write_card
from uta_bench.data import synthetic as syn
from uta_bench.zeroshot.run import evaluate_loaded

# lm-evaluation-harness's results_<date>.json top level: evaluator.simple_evaluate's dict (results,
# group_subtasks, configs, versions, n-shot, higher_is_better, n-samples, config, git_hash, date) plus what
# EvaluationTracker.save_results_aggregated adds (task_hashes and the GeneralConfigTracker fields we fill).
LM_EVAL_KEYS = {"results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
                "config", "git_hash", "date", "task_hashes", "model_source", "model_name", "model_name_sanitized",
                "start_time", "end_time", "total_evaluation_time_seconds"}
OURS = {"run_id", "store", "date_id", "metric_names"}
CLASS_SIZES = {"a": 2, "b": 7, "c": 3, "d": 1, "e": 5, "f": 4}     # unequal: balanced accuracy != top1


@pytest.fixture(scope="module")
def loaded():
    yield from tiny_on_one_thread()


def _unequal_folder(tmp_path):
    root = tmp_path / "data" / "uneq"
    for seed, (name, n) in enumerate(CLASS_SIZES.items()):
        syn.make_imagefolder(root, [name], per_class=n, seed=seed)
    return root, write_card(tmp_path, "uneq", type="classification", dataset={"path": "uneq"}, classes="folder",
                            templates=TEMPLATES)


def test_mean_stderr_hand_worked():
    from uta_bench.stats import mean_stderr

    # outcomes 1,1,1,0: mean 0.75; sample variance ((3 * 0.25^2) + 0.75^2) / 3 = 0.25; sd 0.5; se 0.5 / 2
    assert mean_stderr(0.75, 4) == pytest.approx(0.25, abs=1e-15)
    # 7 of 10: sd^2 = (7 * 0.09 + 3 * 0.49) / 9 = 2.1 / 9; se = sqrt(2.1 / 9 / 10)
    assert mean_stderr(0.7, 10) == pytest.approx(math.sqrt(2.1 / 90), abs=1e-15)


def test_mean_per_class_recall_hand_worked_and_sklearn():
    from uta_bench.zeroshot.classification import accuracy_metrics, mean_per_class_recall

    # class 0: 4 samples, 3 right; class 1: 1 sample, wrong; class 2: 2 samples, both right; class 3 only predicted
    target = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 3, 0, 2, 2])
    m = mean_per_class_recall(pred, target)
    assert m.value == pytest.approx((3 / 4 + 0 / 1 + 2 / 2) / 3, abs=1e-15)
    # se: sqrt(sum r(1-r)/(n-1)) / C = sqrt(0.75 * 0.25 / 3 + 0 + 0) / 3
    assert m.extra["stderr"] == pytest.approx(math.sqrt(0.75 * 0.25 / 3) / 3, abs=1e-15)
    top1 = accuracy_metrics(torch.nn.functional.one_hot(pred, 4).float(), target, ["top1"])[0]
    assert top1.value == pytest.approx(5 / 7) and abs(top1.value - m.value) > 0.1
    skm = pytest.importorskip("sklearn.metrics")
    with pytest.warns(UserWarning):         # sklearn: "y_pred contains classes not in y_true"
        assert m.value == pytest.approx(skm.balanced_accuracy_score(target.numpy(), pred.numpy()), abs=1e-12)


def test_mean_per_class_recall_matches_clip_benchmark_evaluate(loaded, tmp_path, monkeypatch):
    """clip_benchmark's own evaluate() (its classifier, its loop, its balanced_accuracy_score call) on the
    same folder; only its accuracy() helper is replaced by the same formula with .item() (numpy 2)."""
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification as zc

    root, card = _unequal_folder(tmp_path)
    ours = rows(evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card])))

    def accuracy(output, target, topk=(1,)):
        pred = output.topk(max(topk), 1, True, True)[1].t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [correct[:k].reshape(-1).float().sum(0, keepdim=True).item() / len(target) for k in topk]

    monkeypatch.setattr(zc, "accuracy", accuracy)
    ds = torchvision.datasets.ImageFolder(str(root), transform=loaded.preprocess)
    dl = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    cb = zc.evaluate(loaded.model, dl, loaded.tokenizer, ds.classes, TEMPLATES, "cpu", amp=False)
    got = ours[("uneq", "mean_per_class_recall")]
    assert got.value == pytest.approx(cb["mean_per_class_recall"], abs=1e-12)
    assert ours[("uneq", "top1")].value == pytest.approx(cb["acc1"], abs=1e-12)
    assert abs(cb["mean_per_class_recall"] - cb["acc1"]) > 1e-6          # the set tells them apart
    assert got.n == sum(CLASS_SIZES.values()) and got.ci_low <= got.value <= got.ci_high


def _one(path, pattern):
    found = sorted(path.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_output_path_results_json_and_samples(loaded, tmp_path):
    from uta_bench.store import ResultsStore

    _, card = _unequal_folder(tmp_path)
    out = tmp_path / "out"
    run_id = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], output_path=str(out), log_samples=True))
    doc = json.loads(_one(out / "uta_tiny", "results_*.json").read_text())
    assert set(doc) == LM_EVAL_KEYS | OURS
    assert doc["run_id"] == run_id and doc["config"]["model"] == "uta_tiny"
    stored = {r.metric: r for r in ResultsStore().df(run_id=run_id).itertuples()}
    assert set(stored) == {"top1", "top5", "mean_per_class_recall"}
    res = doc["results"]["uneq"]
    n = sum(CLASS_SIZES.values())
    for ours, cb in (("top1", "acc1"), ("top5", "acc5"), ("mean_per_class_recall", "mean_per_class_recall")):
        row = stored[ours]
        assert res[f"{cb},none"] == row.value
        assert (res[f"{cb}_ci_low,none"], res[f"{cb}_ci_high,none"]) == (row.ci_low, row.ci_high)
    for cb in ("acc1", "acc5"):          # lm-eval's mean_stderr of 0/1 outcomes
        p = res[f"{cb},none"]
        assert res[f"{cb}_stderr,none"] == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)), abs=1e-15)
    assert doc["n-samples"]["uneq"] == {"original": n, "effective": n}
    assert doc["versions"] == {"uneq": "1"} and doc["configs"]["uneq"]["templates"] == TEMPLATES
    assert set(doc["higher_is_better"]["uneq"]) == {"acc1", "acc5", "mean_per_class_recall"}

    lines = [json.loads(x) for x in _one(out / "uta_tiny", "samples_uneq_*.jsonl").read_text().splitlines()]
    assert len(lines) == n
    assert sum(x["correct"] for x in lines) / n == pytest.approx(res["acc1,none"], abs=1e-15)
    for x in lines:
        assert (tmp_path / "data" / x["doc_id"]).is_file()
        assert x["target"]["class"] == x["doc_id"].split("/")[1]             # uneq/<class>/<file>
        assert x["correct"] == int(x["top5"][0]["index"] == x["target"]["index"])
        scores = [t["score"] for t in x["top5"]]
        assert scores == sorted(scores, reverse=True) and len(x["top5"]) == 5
    # balanced accuracy recomputed from the samples file alone
    per = {}
    for x in lines:
        per.setdefault(x["target"]["class"], []).append(x["correct"])
    mpcr = sum(sum(v) / len(v) for v in per.values()) / len(per)
    assert res["mean_per_class_recall,none"] == pytest.approx(mpcr, abs=1e-12)


def test_log_samples_retrieval_ranks(loaded, tmp_path):
    syn.make_wds_retrieval(tmp_path / "data" / "rw", n_images=7, maxcount=4)
    card = write_card(tmp_path, "rw", type="retrieval", dataset={"path": "rw", "formats": ["wds"]},
                      metrics=["image_retrieval_recall@1", "text_retrieval_recall@1", "text_retrieval_recall@5"])
    out = tmp_path / "out"
    run_id = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], output_path=str(out), log_samples=True))
    ours = rows(run_id)
    doc = json.loads(_one(out / "uta_tiny", "results_*.json").read_text())
    res = doc["results"]["rw"]
    assert res["image_retrieval_recall@1,none"] == ours[("rw", "image_retrieval_recall@1")].value
    lines = [json.loads(x) for x in _one(out / "uta_tiny", "samples_rw_*.jsonl").read_text().splitlines()]
    assert len(lines) == 7 and doc["n-samples"]["rw"] == {"original": 7, "effective": 7}
    assert all(x["doc_id"].startswith("rw/") and ".tar/" in x["doc_id"] for x in lines)
    ranks = [r for x in lines for r in x["image_retrieval_ranks"]]
    assert len(ranks) == ours[("rw", "image_retrieval_recall@1")].n
    assert sum(r < 1 for r in ranks) / len(ranks) == pytest.approx(res["image_retrieval_recall@1,none"])
    assert sum(x["text_retrieval_rank"] < 5 for x in lines) / 7 == pytest.approx(res["text_retrieval_recall@5,none"])
    assert sum(x["correct"] for x in lines) / 7 == pytest.approx(res["text_retrieval_recall@1,none"])


def test_metric_aliases_one_map():
    from uta_bench.metricnames import canonical_metric, clip_benchmark_name, outcome_key
    from uta_bench.paper.mapping import canonical_metric as paper_canonical

    assert paper_canonical is canonical_metric
    assert [canonical_metric(m) for m in ("acc1", "acc5", "top1", "balanced_accuracy", "i2t_R@5")] == \
        ["top1", "top5", "top1", "mean_per_class_recall", "text_retrieval_recall@5"]
    assert [clip_benchmark_name(m) for m in ("top1", "acc5", "mean_per_class_recall", "image_retrieval_recall@1")] \
        == ["acc1", "acc5", "mean_per_class_recall", "image_retrieval_recall@1"]
    assert outcome_key("acc1") == "correct1" and outcome_key("mean_per_class_recall") is None


def test_card_accepts_clip_benchmark_names():
    from uta_bench.taskcards import parse_card

    c = parse_card({"task": "x", "version": 1, "type": "classification", "metrics": ["acc1", "acc5",
                                                                                    "mean_per_class_recall"]})
    assert list(c.metrics) == ["top1", "top5", "mean_per_class_recall"]


# ------------------------------------------------------------------ command line
def cli(*args):
    return subprocess.run([sys.executable, "-m", "uta_bench", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=900)


def _one_line_exit_2(r, needle):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle in r.stderr and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_log_samples_needs_output_path(tmp_path):
    r = cli("run", "zeroshot", "--model", "uta_tiny", "--random-init", "--tasks", "sample_photos", "--log-samples")
    _one_line_exit_2(r, "--log-samples needs --output-path")
    r = cli("check", "--model", "uta_tiny", "--random-init", "--tasks", "sample_photos", "--log-samples")
    _one_line_exit_2(r, "--log-samples needs --output-path")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_path_fails_before_the_run(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    store = tmp_path / "s.sqlite"
    try:
        r = cli("run", "zeroshot", "--model", "uta_tiny", "--random-init", "--tasks", "sample_photos",
                "--store", str(store), "--output-path", str(ro / "out"))
    finally:
        ro.chmod(0o755)
    _one_line_exit_2(r, "--output-path")
    assert "permission denied" in r.stderr and not store.exists()      # nothing ran, nothing stored


def test_output_path_that_is_a_file(tmp_path):
    store = tmp_path / "s.sqlite"
    (tmp_path / "afile").write_text("x")
    r = cli("run", "zeroshot", "--model", "uta_tiny", "--random-init", "--tasks", "sample_photos",
            "--store", str(store), "--output-path", str(tmp_path / "afile"))
    _one_line_exit_2(r, "is a file")
    assert not store.exists()


def test_results_and_compare_take_clip_benchmark_names(loaded, tmp_path):
    _, card = _unequal_folder(tmp_path)
    a = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card]))
    b = evaluate_loaded(tiny(1), [str(card)], cfg(tmp_path, [card]))
    r = cli("results", "--run", a, "--metric", "acc1")
    assert r.returncode == 0, r.stderr
    assert "top1" in r.stdout and "top5" not in r.stdout and "mean_per_class" not in r.stdout
    r = cli("compare", a, b, "--metrics", "acc1", "--bootstrap", "200", "--json", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "c.json").read_text())["results"]
    assert [x["key"] for x in got] == ["correct1"]


def test_check_output_path_measured_and_reused(loaded, tmp_path, monkeypatch, capsys):
    from uta_bench.cli.main import main

    _, card = _unequal_folder(tmp_path)
    monkeypatch.setenv("UTA_BENCH_TASKS", str(card.parent))
    base = evaluate_loaded(tiny(1), [str(card)], cfg(tmp_path, [card]))
    out, js = tmp_path / "out", tmp_path / "check.json"
    common = ["check", "--model", "uta_tiny", "--random-init", "--tasks", "uneq", "--against", base, "--tolerance",
              "100", "--data-root", str(tmp_path / "data"), "--output-path", str(out), "--json", str(js)]

    def check(*extra):
        with pytest.raises(SystemExit) as e:
            main(common + list(extra))
        assert e.value.code == 0, capsys.readouterr()
        return json.loads(js.read_text())

    rep = check("--log-samples")                       # evaluated now: results + samples written by the run
    (run_id,) = rep["candidate_runs"]
    assert rep["measured"] and not rep["reused"]
    first = json.loads(_one(out / "uta_tiny", "results_*.json").read_text())
    assert first["run_id"] == run_id and set(first) == LM_EVAL_KEYS | OURS
    n = sum(CLASS_SIZES.values())
    assert len(_one(out / "uta_tiny", "samples_uneq_*.jsonl").read_text().splitlines()) == n

    rep = check("--metrics", "acc1")                   # same run key: re-used; results JSON from the stored rows
    assert rep["reused"] and rep["candidate_runs"] == [run_id]
    assert [v["metric"] for v in rep["verdicts"]] == ["top1"]        # clip_benchmark's name accepted
    again = json.loads(_one(out / "uta_tiny", f"results_*_{run_id}.json").read_text())
    assert again["results"] == first["results"] and set(again) == LM_EVAL_KEYS | OURS
    assert len(list((out / "uta_tiny").glob("samples_*.jsonl"))) == 1
