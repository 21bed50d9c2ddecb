"""The contrastive stage end to end on CPU (tiny towers, generated webdataset shards): a run killed with
SIGKILL and resumed logs the same loss curve and ends with the same weights as an uninterrupted run;
its checkpoint (released UTA layout) evaluates through `run zeroshot` like clip_benchmark says; two
torchrun/gloo processes train exactly like one; bf16 autocast + gradient checkpointing run."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from uta_bench.contrastive.config import load_recipe
from uta_bench.contrastive.train import train_contrastive
from uta_bench.training.log import read_log
from cli_env import cli_env

pytestmark = pytest.mark.slow
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230), "yellow": (235, 215, 40)}
STEPS = 8


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from uta_bench.contrastive.data import write_shards

    rng = np.random.default_rng(0)
    names = list(COLOURS)
    pairs = []
    for i in range(320):
        c = names[i % 4]
        img = np.clip(rng.normal(COLOURS[c], 40, (72, 80, 3)), 0, 255)
        pairs.append((img, f"a photo of a {c} {['thing', 'blob', 'patch'][i % 3]}."))
    root = tmp_path_factory.mktemp("pairs")
    write_shards(pairs, root / "shards", per_shard=40)
    return root / "shards"


def _cfg(shards, out, **kw):
    over = {"data": str(shards), "output_dir": str(out), "samples": 64 * STEPS, "ckpt_every": 2, **kw}
    return load_recipe("smoke", over)


@pytest.fixture(scope="module")
def uninterrupted(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # the CLI runs below use OMP_NUM_THREADS=1: a CPU reduction's rounding
    try:                              # depends on the thread count (2 threads vs 1: the 7th digit of the loss)
        res = train_contrastive(_cfg(shards, out), resume="no")
    finally:
        torch.set_num_threads(threads)
    return out, res


def _env():
    return cli_env()


def _cli(shards, out):
    return [sys.executable, "-m", "uta_bench", "train", "contrastive", "--recipe", "smoke", "--data", str(shards),
            "--out", str(out), "--samples", str(64 * STEPS), "--set", "ckpt_every=2"]


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_killed_and_resumed_run_equals_uninterrupted(shards, uninterrupted, tmp_path):
    from uta_bench.training.state import read_training_state

    full_dir, full = uninterrupted
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(shards, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "last.pt").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()                                          # SIGKILL: no clean-up runs
    proc.wait()
    killed_at = read_training_state(out / "last.pt")["step"]
    assert 2 <= killed_at < STEPS and not (out / "model.safetensors").exists()
    done = subprocess.run(_cli(shards, out), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    want = [(r["step"], r["loss"], r["lr"]) for r in read_log(full_dir)]
    got = [(r["step"], r["loss"], r["lr"]) for r in read_log(out)]
    assert len(want) == STEPS and got == want           # bit-identical curve, no duplicated steps
    a, b = _tensors(full_dir / "model.safetensors"), _tensors(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.losses[-1] < full.losses[0]


def test_checkpoint_is_released_layout_with_provenance_and_evaluates(uninterrupted, tmp_path):
    import json

    from safetensors import safe_open

    from uta_bench.data import synthetic  # noqa: F401  (ImageFolder helpers live next to it)
    from uta_bench.models.loader import load_model
    from uta_bench.zeroshot.run import RunConfig, run_zeroshot
    from zs_helpers import cb_classification, rows, write_card

    full_dir, _ = uninterrupted
    path = full_dir / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert "visual.blocks.0.attn.q_bias" in keys and "visual.rope.freqs_cos" in keys and "logit_scale" in keys
    assert meta["recipe"] == "contrastive_smoke" and int(meta["samples_seen"]) == 64 * STEPS
    assert json.loads(meta["vision_init"])["model"] == "uta_tiny"
    assert float(_tensors(path)["logit_scale"].exp()) == pytest.approx(100.0)   # fixed temperature 0.01
    # a coloured-patch ImageFolder (the training colours) through the normal zero-shot runner
    rng = np.random.default_rng(5)
    from PIL import Image

    root = tmp_path / "data" / "colours"
    classes = {**COLOURS, "purple": (150, 60, 200), "cyan": (40, 210, 215)}   # 6 classes: top-5 exists
    for c, rgb in classes.items():
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.clip(rng.normal(rgb, 40, (64, 64, 3)), 0, 255).astype(np.uint8)).save(
                root / c / f"{i}.png")
    card = write_card(tmp_path, "colours", type="classification", dataset={"path": "colours"},
                      classes=sorted(classes), templates=["a photo of a {c} thing."], expected_samples=30)
    got = {}
    run_id = run_zeroshot(RunConfig(model="uta_tiny", tasks=[str(card)], checkpoint=str(path),
                                    data_root=str(tmp_path / "data"), progress=False, use_cache=False),
                          on_task=lambda c, ms: got.update({m.metric: m.value for m in ms}))
    assert rows(run_id)[("colours", "top1")].value == got["top1"]
    import torchvision

    loaded = load_model("uta_tiny", checkpoint=str(path))
    ds = torchvision.datasets.ImageFolder(str(root), transform=loaded.preprocess)
    assert ds.classes == sorted(classes)                 # folder order == class-name order
    oracle = cb_classification(loaded, ds, sorted(classes), ["a photo of a {c} thing."])
    assert got["top1"] == pytest.approx(oracle["acc1"])


def test_two_gloo_processes_equal_one(shards, uninterrupted, tmp_path):
    full_dir, _ = uninterrupted
    out = tmp_path / "ddp"
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "uta_bench", *_cli(shards, out)[3:]], env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = read_log(full_dir), read_log(out)
    assert [r["step"] for r in two] == [r["step"] for r in one]
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    a, b = _tensors(full_dir / "model.safetensors"), _tensors(out / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)


def test_bf16_autocast_and_gradient_checkpointing(shards, tmp_path):
    fp32 = train_contrastive(_cfg(shards, tmp_path / "a", samples=128), resume="no")
    bf16 = train_contrastive(_cfg(shards, tmp_path / "b", samples=128, precision="bf16", grad_checkpointing=True),
                             resume="no")
    assert len(bf16.losses) == 2 and all(np.isfinite(bf16.losses))
    assert bf16.losses == pytest.approx(fp32.losses, rel=5e-2)
