"""The learning-rate schedule every trainer uses: linear warm-up, then cosine decay.

Convention (the only place it is stated): ``step`` is the 0-based index of the optimizer step about to
be taken. For ``step < warmup_steps`` the rate is ``base_lr * (step + 1) / warmup_steps``, so the first
update already moves (``base_lr / warmup_steps``) and the last warm-up step uses ``base_lr``. From
``step == warmup_steps`` the rate follows a half cosine from ``base_lr`` down to ``min_lr``, reaching
``min_lr`` at ``step == total_steps - 1`` (the last update) and staying there beyond it.
"""
from __future__ import annotations

import math


def warmup_cosine_lr(step: int, *, base_lr: float, total_steps: int, warmup_steps: int,
                     min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer, lr: float) -> None:
    """Every param group gets ``lr`` times its ``lr_scale`` (layer-wise decay; 1.0 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
