"""Exact resume (all randomness on: RandAugment, random erasing, mixup/cutmix, drop-path, EMA, grad
accumulation; different worker counts) and bf16 autocast."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread(one_thread):  # every test here runs single-threaded (fixture in conftest.py)
    yield


@pytest.fixture(scope="module")
def ft_data(tmp_path_factory):
    from uta_bench.finetune.sample import make_finetune_sample

    return make_finetune_sample(tmp_path_factory.mktemp("ft") / "data", classes=4, train_per_class=6,
                                val_per_class=1, size=72)


def _cfg(ft_data, out, **kw):
    from uta_bench.finetune.config import make_config

    base = dict(model="uta_tiny", pretrained=False, train_dir=str(ft_data / "train"), out_dir=str(out),
                epochs=2, batch_size=8, accum_steps=2, lr=2e-3, layer_decay=0.8, warmup_epochs=1,
                drop_path=0.2, smoothing=0.1, mixup=0.8, cutmix=1.0, re_prob=0.25,
                auto_augment="rand-m9-mstd0.5-inc1", ema=True, ema_decay=0.9, workers=0, save_every=2)
    base.update(kw)
    return make_config(**base)


def test_resume_is_bitwise_exact(ft_data, tmp_path):
    from uta_bench.finetune.train import STATE, train

    full = train(_cfg(ft_data, tmp_path / "full"), progress=False)
    assert full["step"] == full["total_steps"] == 6          # 24 images / 8 per update x 2 epochs
    part = train(_cfg(ft_data, tmp_path / "split", stop_after=2, workers=2), progress=False)
    assert part["step"] == 2 and part["exported"] == []       # stopped mid-epoch 0, nothing exported
    rest = train(_cfg(ft_data, tmp_path / "split", workers=2), progress=False)
    assert rest["step"] == 6
    assert part["losses"] + rest["losses"] == full["losses"]  # same batches, same augmentation, same mixing
    a = torch.load(tmp_path / "full" / STATE, weights_only=True)
    b = torch.load(tmp_path / "split" / STATE, weights_only=True)
    for part_name in ("model", "ema"):
        pa, pb = (a, b) if part_name == "model" else (a["extra"], b["extra"])
        for k, v in pa[part_name].items():
            assert torch.equal(v, pb[part_name][k]), (part_name, k)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    log = [json.loads(ln) for ln in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines() if ln]
    assert [x["step"] for x in log] == [1, 2, 3, 4, 5, 6]
    assert [x["loss"] for x in log] == full["losses"]
    # warm-up: 1 of 2 epochs = 3 updates at 2e-3 * (step+1)/3; cosine over updates 3..5 down to min_lr 0
    assert [x["lr"] for x in log] == pytest.approx([2e-3 / 3, 4e-3 / 3, 2e-3, 2e-3, 1e-3, 0.0])


def test_resume_refuses_changed_settings(ft_data, tmp_path):
    from uta_bench.errors import UtaBenchError
    from uta_bench.finetune.train import train

    train(_cfg(ft_data, tmp_path / "run", stop_after=1, mixup=0.0, cutmix=0.0, auto_augment="none"),
          progress=False)
    with pytest.raises(UtaBenchError, match="cannot resume.*(steps_per_epoch|global_batch)"):
        train(_cfg(ft_data, tmp_path / "run", batch_size=4, accum_steps=1), progress=False)
    with pytest.raises(UtaBenchError, match="exists; pass --resume"):
        train(_cfg(ft_data, tmp_path / "run"), progress=False, resume=False)


def test_bf16_autocast_trains(ft_data, tmp_path):
    from uta_bench.finetune.train import train

    kw = dict(stop_after=2, mixup=0.0, cutmix=0.0, drop_path=0.0, auto_augment="none", ema=False)
    fp32 = train(_cfg(ft_data, tmp_path / "fp32", **kw), progress=False)
    bf16 = train(_cfg(ft_data, tmp_path / "bf16", precision="bf16", **kw), progress=False)
    assert all(torch.isfinite(torch.tensor(bf16["losses"])))
    assert bf16["losses"][0] != fp32["losses"][0]                # autocast really ran in bf16
    assert abs(bf16["losses"][0] - fp32["losses"][0]) < 0.05     # ... and computed the same loss
