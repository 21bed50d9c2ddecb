"""The demo's second stage (paper Sec. 3): contrastive fine-tuning of the UTA student + teacher text tower
on the world's captions, through the real trainer (``uta_bench.contrastive``) and real webdataset shards."""
from __future__ import annotations

from pathlib import Path


def contrastive_stage(images, captions: list[str], init: Path, out: Path, *, arch: str, steps: int, batch: int,
                      lr: float, seed: int, progress: bool) -> tuple[Path, dict]:
    """Fine-tune the UTA-layout checkpoint ``init`` on ``(images uint8 [n,H,W,3], captions)``.

    Returns the fine-tuned checkpoint (released UTA layout) and ``{"loss_first", "loss_last", "steps"}``.
    """
    from uta_bench.contrastive.config import from_dict
    from uta_bench.contrastive.data import write_shards
    from uta_bench.contrastive.train import train_contrastive

    shards = out / "pairs"
    if not shards.is_dir():
        write_shards(zip(images, captions), shards, per_shard=500, prefix="demo")
    cfg = from_dict({
        "name": "demo_contrastive", "arch": arch, "vision_init": {"checkpoint": str(init)},
        "text_init": {"checkpoint": str(init)}, "data": str(shards), "data_streams": 4,
        "samples": steps * batch, "global_batch_size": batch, "micro_batch_size": batch // 2,
        "optimizer": "lamb", "lr": lr, "layer_decay": 0.75, "weight_decay": 0.05, "temperature": 0.01,
        "warmup_steps": max(1, steps // 10), "precision": "fp32", "crop_scale": [0.9, 1.0],
        "output_dir": str(out / "run"), "ckpt_every": 0, "log_every": max(1, steps // 10), "seed": seed,
        "device": "cpu", "decode_threads": 0}, "demo")
    res = train_contrastive(cfg, resume="no", progress=progress)
    return res.exported, {"loss_first": res.losses[0], "loss_last": res.losses[-1], "steps": len(res.losses)}
