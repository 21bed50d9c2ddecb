"""Mixed precision in one place: "fp32" (no autocast), "bf16" (autocast), "fp16" (autocast + grad scaler)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("fp32", *DTYPES)


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")


def autocast(device: torch.device, precision: str):
    """The forward pass's context: ``nullcontext()`` for fp32, ``torch.autocast`` in bf16/fp16 otherwise."""
    _check(precision)
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str):
    """``torch.amp.GradScaler`` for fp16 (small gradients would underflow), ``None`` otherwise."""
    _check(precision)
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
