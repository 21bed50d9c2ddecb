"""`uta-bench import clip-benchmark`: a result JSON written by clip_benchmark's own CLI (`clip_benchmark eval`
in a subprocess, on a generated webdataset in its layout, with a random-init open_clip checkpoint file)
lands in the store with clip_benchmark's value, shows in `table --with-runs`, re-imports idempotently; a
malformed file writes nothing (exit 2); `check --against` an imported run works without predictions."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from uta_bench.errors import UtaBenchError


def cli(capsys, *args) -> tuple[int, str]:
    from uta_bench.cli.main import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


@pytest.fixture(scope="module")
def cb_result(tmp_path_factory):
    """clip_benchmark 1.6's `eval` on wds/flickr30k (12 generated images x 5 captions in its webdataset
    layout), ViT-S-32 random init from a local checkpoint file. (Retrieval: its classification path calls
    float() on a 1-element array, which numpy 2 rejects, so its CLI cannot finish a classification run here.)"""
    import open_clip
    import torch

    from uta_bench.data import synthetic as syn

    tmp = tmp_path_factory.mktemp("cb")
    root = syn.make_wds_retrieval(tmp / "wds_flickr30k", n_images=12, per_image=(5,))
    torch.manual_seed(0)
    ckpt = tmp / "vit_s32_random.pt"
    torch.save(open_clip.create_model("ViT-S-32").state_dict(), ckpt)
    out = tmp / "result.json"
    cmd = [sys.executable, "-m", "clip_benchmark.cli", "eval", "--dataset", "wds/flickr30k", "--dataset_root",
           str(root), "--model", "ViT-S-32", "--pretrained", str(ckpt), "--output", str(out), "--num_workers", "0",
           "--batch_size", "4", "--no_amp", "--seed", "0", "--recall_k", "1", "5", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return out


def test_clip_benchmark_cli_result_imports_and_shows_in_table(cb_result, capsys):
    from uta_bench.store import ResultsStore

    data = json.loads(cb_result.read_text())
    assert data["dataset"] == "wds/flickr30k" and data["task"] == "zeroshot_retrieval"
    code, out = cli(capsys, "import", "clip-benchmark", cb_result)
    assert code in (0, None), out
    df = ResultsStore().df()
    assert set(df.source) == {"imported"} and set(df.model) == {"open_clip:ViT-S-32"}
    assert set(df.task) == {"flickr30k"} and df.run_id.nunique() == 1
    got = dict(zip(df.metric, df.value))
    assert got == data["metrics"] and len(got) == 6 and "image_retrieval_recall@1" in got
    cfg = json.loads(df.config_json.iloc[0])
    assert cfg["source_sha256"] == hashlib.sha256(cb_result.read_bytes()).hexdigest()
    assert cfg["source_file"] == str(cb_result.resolve()) and cfg["checkpoint"] == data["pretrained"]
    code, out = cli(capsys, "import", "clip-benchmark", cb_result)          # again: nothing added
    assert code in (0, None) and "already imported" in out, out
    assert len(ResultsStore().df()) == len(df)

    code, out = cli(capsys, "table", "--paper", "--with-runs", "--tables", "2", "--format", "markdown")
    assert code in (0, None), out
    line = next(ln for ln in out.splitlines() if "ours: open_clip:ViT-S-32" in ln)
    assert f"{100 * data['metrics']['image_retrieval_recall@5']:.1f}" in line, line

    # --model maps the file to a registered model: it lands under that model's paper row (once)
    for _ in range(2):
        code, out = cli(capsys, "import", "clip-benchmark", cb_result, "--model", "openai_b16")
        assert code in (0, None), out
    assert "already imported" in out and len(ResultsStore().df(model="openai_b16")) == 6
    code, out = cli(capsys, "table", "--paper", "--with-runs", "--model", "openai_b16", "--tables", "2",
                    "--format", "markdown")
    assert code in (0, None), out
    line = next(ln for ln in out.splitlines() if "ours: openai_b16" in ln)
    assert f"{100 * data['metrics']['image_retrieval_recall@5']:.1f}" in line, line


def test_provenance_names_the_clip_benchmark_version(tmp_path):
    from uta_bench.cbimport import import_files
    from uta_bench.store import ResultsStore

    f = tmp_path / "r.json"
    f.write_text(json.dumps({"dataset": "wds/mscoco_captions", "model": "ViT-B-32", "pretrained": "openai",
                             "task": "zeroshot_retrieval", "language": "en", "clip_benchmark_version": "1.6.2",
                             "metrics": {"image_retrieval_recall@5": 0.5, "text_retrieval_recall@5": 0.6}}))
    import_files(ResultsStore(), [f])
    df = ResultsStore().df()
    assert set(df.task) == {"mscoco"} and set(df.model) == {"open_clip:ViT-B-32/openai"}
    assert {json.loads(e)["clip_benchmark_version"] for e in df.extra_json} == {"1.6.2"}


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not JSON"),
    ('["a"]', "not a JSON object"),
    ('{"dataset": "wds/imagenet1k", "model": "ViT-B-32", "pretrained": "openai", "task": "zeroshot_classification",'
     ' "metrics": {"acc1": 77.3}}', "'acc1' = 77.3 is not a fraction"),
    ('{"dataset": "cifar10", "model": "ViT-B-32", "pretrained": "openai", "task": "zeroshot_classification",'
     ' "metrics": {"acc1": 0.9}}', "dataset 'cifar10' has no uta-bench task card"),
    ('{"dataset": "imagenet1k", "model": "ViT-B-32", "pretrained": "openai", "task": "linear_probe",'
     ' "metrics": {"lp_acc1": 0.9}}', "task 'linear_probe' has no uta-bench task"),
    ('{"dataset": "imagenet1k", "pretrained": "openai", "task": "zeroshot_classification",'
     ' "metrics": {"acc1": 0.9}}', "'model' is missing"),
])
def test_malformed_file_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, content, needle):
    from uta_bench.store import ResultsStore

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"dataset": "wds/imagenet-a", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k",
                                "task": "zeroshot_classification", "metrics": {"acc1": 0.5}, "language": "en"}))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out = cli(capsys, "import", "clip-benchmark", good, bad)         # the good one is not written either
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and str(bad) in lines[0], out
    assert ResultsStore().df().empty


def test_dataset_and_model_names():
    from uta_bench.cbimport import dataset_task, model_spec

    assert [dataset_task(d) for d in ("imagenet1k", "wds/imagenet-a", "wds_imagenet-r", "imagenetv2",
                                      "wds/imagenet_sketch", "objectnet", "wds/flickr30k", "mscoco_captions",
                                      "cifar10")] == ["imagenet1k", "imagenet_a", "imagenet_r", "imagenet_v2",
                                                      "imagenet_sketch", "objectnet", "flickr30k", "mscoco", None]
    assert model_spec("ViT-B-32", "laion2b-s34b-b79k") == ("open_clip:ViT-B-32/laion2b_s34b_b79k", None)
    assert model_spec("ViT-B-32", "/w/ckpt.pt") == ("open_clip:ViT-B-32", "/w/ckpt.pt")
    assert model_spec("hf-hub:org/name", "") == ("hf-hub:org/name", None)


def test_check_against_an_imported_run_uses_the_rows(tmp_path, capsys):
    """No predictions on the imported side: the verdict's CI comes from the rows (candidate's Wilson CI),
    not from a paired test; `compare` says the imported run has no predictions."""
    from uta_bench import gate
    from uta_bench.cbimport import import_files
    from uta_bench.stats import wilson_interval
    from uta_bench.store import Metric, ResultsStore, RunInfo

    store = ResultsStore()
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"dataset": "imagenet1k", "model": "ViT-B-16", "pretrained": "openai",
                             "task": "zeroshot_classification", "metrics": {"acc1": 0.9, "acc5": 0.99},
                             "language": "en"}))
    ((it, n),) = import_files(store, [f])
    assert n == 2 and it.model == "open_clip:ViT-B-16/openai"
    store.write_task(RunInfo("cand", "uta_tiny"), "imagenet1k", [Metric("top1", 0.5, 100, *wilson_interval(50, 100))])
    with pytest.raises(UtaBenchError, match=f"run '{it.run_id}' has no saved per-sample predictions"):
        from uta_bench.compare import compare_runs

        compare_runs(store, it.run_id, "cand")
    cand = store.df(run_id="cand")
    kind, base = gate.baseline_rows(store, it.run_id, ["cand"])
    assert kind == "run" and base.source.tolist() == ["imported", "imported"]
    r, b = cand.to_dict("records")[0], base[base.metric == "top1"].to_dict("records")[0]
    lo, hi, how = gate._ci_from_rows(r, b)
    assert how == "candidate-ci" and hi < 0
    v = gate.decide(gate.Verdict("imagenet1k", "top1", b["value"], r["value"], ci_low=lo, ci_high=hi), 0.005)
    assert v.status == "regression" and v.delta == pytest.approx(-0.4)


def test_check_cli_against_an_imported_run(tmp_path, capsys, monkeypatch, official_ckpt):
    """End to end: `check --against RUN` with an imported baseline run decides from the rows (no paired test)."""
    from test_check import CARD

    from uta_bench.store import ResultsStore

    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "gate_photos.yaml").write_text(CARD)
    monkeypatch.setenv("UTA_BENCH_TASKS", str(cards))
    ckpt, _ = official_ckpt("uta_tiny_p16", fmt="safetensors")
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"dataset": "wds/imagenet1k", "model": "ViT-B-16", "pretrained": "openai",
                             "task": "zeroshot_classification", "metrics": {"acc1": 0.999}, "language": "en"}))
    code, out = cli(capsys, "import", "clip-benchmark", f, "--task", "gate_photos")
    assert code in (0, None), out
    (run,) = set(ResultsStore().df().run_id)
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", ckpt, "--against", run, "--tasks",
                    "gate_photos", "--metrics", "top1", "--json", tmp_path / "c.json")
    (v,) = json.loads((tmp_path / "c.json").read_text())["verdicts"]
    assert v["baseline"] == 0.999 and v["baseline_ref"] == f"run {run}" and v["noise"] == "candidate-ci", out
    assert code == 1 and v["status"] == "regression" and v["ci_high"] < 0      # 24 tiny-model images vs 99.9%
