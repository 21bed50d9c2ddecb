"""--device/--workers/--batch-size auto (uta_bench.resources): what auto picks, what the run stores,
and the CUDA out-of-memory backoff (an encoder that fails above N images, as a GPU would)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from zs_helpers import TEMPLATES, cfg, tiny_on_one_thread, write_card
from uta_bench.data import synthetic as syn
from uta_bench.errors import UtaBenchError
from uta_bench import resources as R
from cli_env import cli_env



@pytest.fixture(scope="module")
def loaded():
    yield from tiny_on_one_thread()


def _card(tmp_path, n_classes=3, per_class=4):
    syn.make_imagefolder(tmp_path / "data" / "f", [f"class_{i}" for i in range(n_classes)], per_class=per_class,
                         size=32)
    return write_card(tmp_path, "f", type="classification", dataset={"path": "f"}, classes="folder",
                      templates=TEMPLATES, metrics=["top1", "top2"])


# what auto picks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cpus, local_world, device, want", [
    (16, 1, "cuda", 8),     # all but the main process's core, at most 8
    (16, 4, "cuda", 3),     # 4 ranks share 16 cores: 4 each, one feeds the GPU
    (6, 1, "cuda", 5),
    (16, 1, "cpu", 4),      # the model's threads need the cores: one worker per 4
    (2, 1, "cpu", 0),
    (1, 1, "cuda", 0),      # a single core: load in the main process
])
def test_auto_workers(monkeypatch, cpus, local_world, device, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    assert R.auto_workers(device) == want


def test_auto_device_follows_cuda_and_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert R.resolve_device("auto") == "cuda:3"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert R.resolve_device("auto") == "cpu"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    res = R.resolve("auto", "auto", "auto")
    assert (res.device, res.workers, res.batch_size, res.auto) == ("cpu", 0, 64, ("device", "workers", "batch_size"))
    assert res.describe() == "device cpu (auto), workers 0 (auto), batch size 64 (auto)"
    assert R.resolve("cpu", "3", 16).auto == ()
    with pytest.raises(UtaBenchError, match=r"--workers must be an integer >= 0, not 'many' \(or auto"):
        R.resolve("cpu", "many", 16)


# the run stores what ran ----------------------------------------------------------------------------
def _uta(*args, env=None):
    e = {**cli_env(HF_HUB_OFFLINE="1"), **(env or {})}
    p = subprocess.run([sys.executable, "-m", "uta_bench", *map(str, args)], env=e, text=True,
                       capture_output=True, timeout=300)
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    return p.returncode, p.stdout, p.stderr


def test_cli_auto_runs_on_cpu_stores_it_and_the_gate_finds_the_run(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from uta_bench.gate import candidate_key
    from uta_bench.store import ResultsStore
    from uta_bench.taskcards import load_card_file

    card = _card(tmp_path)
    store = tmp_path / "r.sqlite"
    env = {"UTA_BENCH_STORE": str(store), "UTA_BENCH_HOME": os.environ["UTA_BENCH_HOME"]}
    code, out, err = _uta("run", "zeroshot", "-m", "uta_tiny", "--random-init", "--tasks", card,
                          "--data-root", tmp_path / "data", "--no-progress", env=env)
    assert code == 0, err
    workers = R.auto_workers("cpu")
    assert f"device cpu (auto), workers {workers} (auto), batch size 64 (auto)" in out
    df = ResultsStore(str(store)).df()
    assert set(df.device) == {"cpu"} and set(df.device_type) == {"cpu"}
    conf = json.loads(df.config_json.iloc[0])
    assert (conf["device"], conf["workers"], conf["batch_size"]) == ("cpu", workers, 64)
    assert conf["auto"] == ["device", "workers", "batch_size"]
    assert json.loads(df.extra_json.iloc[0])["batch_size"] == 64
    # `check` computes the candidate's run key from --device auto before running: it must be this run's
    key = candidate_key("uta_tiny", None, load_card_file(card), None, True,
                        {"device": "auto", "data_root": str(tmp_path / "data")})
    assert key.device_type == "cpu" and set(df.run_key) == {key.digest()}


def test_check_device_cuda_without_gpu_is_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, out, err = _uta("check", "-m", "uta_tiny", "--random-init", "--tasks", "x", "--device", "cuda")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: --device cuda: no CUDA GPU") and "--device cpu" in lines[0]


# out-of-memory backoff ------------------------------------------------------------------------------
class OomAbove:
    """Wraps ``loaded.model.encode_image``: batches above ``limit`` raise CUDA out-of-memory; counts how
    often each image (by its pixel bytes) is encoded successfully."""

    def __init__(self, model, limit: int):
        self.inner, self.limit, self.seen, self.sizes = model.encode_image, limit, {}, []

    def __call__(self, images, *a, **kw):
        self.sizes.append(len(images))
        if len(images) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        for im in images:
            k = im.numpy().tobytes()
            self.seen[k] = self.seen.get(k, 0) + 1
        return self.inner(images, *a, **kw)


def test_auto_batch_halves_on_oom_and_equals_a_fixed_small_batch(loaded, tmp_path, monkeypatch):
    from uta_bench.predictions import load_predictions
    from uta_bench.store import ResultsStore
    from uta_bench.zeroshot.run import evaluate_loaded

    card = _card(tmp_path)                                # 12 images
    ref = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], use_cache=False, batch_size=4))
    oom = OomAbove(loaded.model, limit=5)
    monkeypatch.setattr(loaded.model, "encode_image", oom)
    run = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], use_cache=False, batch_size="auto"))
    store = ResultsStore()
    a, b = store.df(run_id=ref), store.df(run_id=run)
    assert list(a.value) == list(b.value)
    pa, pb = load_predictions(store, ref, "f"), load_predictions(store, run, "f")
    for k in pa:
        assert torch.equal(torch.as_tensor(pa[k]), torch.as_tensor(pb[k])), k
    # 64 -> 32 -> 16 -> 8 -> 4: each size tried once, then every batch at 4; each image encoded once
    assert oom.sizes[:5] == [12, 12, 12, 8, 4] and max(oom.sizes[5:]) == 4
    assert len(oom.seen) == 12 and set(oom.seen.values()) == {1}
    extra = json.loads(b.extra_json.iloc[0])
    assert extra["batch_size"] == 4 and extra["oom_backoffs"] == 4
    assert json.loads(b.config_json.iloc[0])["auto"] == ["batch_size"]


def test_backoff_keeps_order_and_an_explicit_batch_size_is_an_error():
    x = torch.arange(10.0)[:, None]
    calls = []

    def fn(t):
        calls.append(len(t))
        if len(t) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return t * 2

    sizer = R.OomBackoff(8)
    assert torch.equal(sizer(fn, x), x * 2)
    assert calls == [8, 4, 2, 2, 2, 2, 2] and sizer.size == 2 and sizer.backoffs == 2
    with pytest.raises(UtaBenchError, match="CUDA out of memory at --batch-size 8; lower --batch-size or pass "
                                            "--batch-size auto"):
        R.OomBackoff(8, auto=False)(fn, x)


def test_oom_at_batch_size_one_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from uta_bench.cli.main import main
    from uta_bench.models.loader import LoadedModel

    def always_oom(self, images, normalize=True):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(LoadedModel, "encode_image", always_oom)
    card = _card(tmp_path, n_classes=2, per_class=2)
    with pytest.raises(SystemExit) as e:
        main(["run", "zeroshot", "-m", "uta_tiny", "--random-init", "--tasks", str(card), "--data-root",
              str(tmp_path / "data"), "--no-progress", "--no-cache", "--store", str(tmp_path / "r.sqlite"),
              "--workers", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: CUDA out of memory at batch size 1; free the GPU (other processes), use "
                      "--precision bf16, or run on another device (--device cpu)"]
    assert "Traceback" not in err
    from uta_bench.store import ResultsStore

    assert len(ResultsStore(str(tmp_path / "r.sqlite")).df()) == 0     # nothing half-written


# training commands: auto device / workers, the recipe's batch ---------------------------------------
def test_finetune_config_resolves_auto_and_keeps_the_recipe(monkeypatch, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from uta_bench.finetune.config import make_config

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    cfg = make_config(None, train_dir=str(tmp_path))                  # no recipe: auto device and workers
    assert (cfg.device, cfg.workers, cfg.batch_size, cfg.auto) == ("cpu", 2, 1024, ("device", "workers"))
    cfg = make_config("smoke", train_dir=str(tmp_path))               # the recipe says cpu / 0 workers
    assert (cfg.device, cfg.workers, cfg.batch_size, cfg.auto) == ("cpu", 0, 8, ())
    cfg = make_config("smoke", train_dir=str(tmp_path), workers="auto")
    assert (cfg.workers, cfg.auto) == (2, ("workers",))
    with pytest.raises(UtaBenchError, match="--device cuda: no CUDA GPU"):
        make_config("smoke", train_dir=str(tmp_path), device="cuda")


def test_det_resolves_auto_before_building_the_config(monkeypatch, tmp_path):
    pytest.importorskip("mmengine")
    from uta_bench.det import config as det_config
    from uta_bench.det.train import train_detector

    seen = {}

    def capture(*a, **kw):
        seen.update(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(det_config, "build_config", capture)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    with pytest.raises(RuntimeError, match="stop here"):
        train_detector("coco_smoke", "uta_tiny", work_dir=str(tmp_path), pretrained=False, batch_size="auto",
                       workers="auto")
    want = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert (seen["device"], seen["workers"], seen["batch_size"]) == (want, R.auto_workers(want[:4]), None)


def test_seg_config_auto_workers_and_recipe_batch(monkeypatch):
    pytest.importorskip("mmseg")
    from uta_bench.seg.config import build_config

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    want = R.auto_workers("cuda" if torch.cuda.is_available() else "cpu")
    cfg = build_config("upernet_uta_b16_ade20k", workers="auto", batch_size="auto")
    assert cfg.train_dataloader.batch_size == 4                       # the recipe's per-GPU batch
    assert cfg.train_dataloader.num_workers == cfg.test_dataloader.num_workers == want
    assert cfg.uta_resources["auto"] == ["device", "workers", "batch_size"]
    kept = build_config("upernet_uta_b16_ade20k")                     # None: the recipe's workers
    assert kept.uta_resources["auto"] == ["device"] and "workers" not in kept.uta_resources["auto"]
