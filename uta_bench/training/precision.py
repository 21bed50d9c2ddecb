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


def backward(loss: torch.Tensor, scaler=None) -> None:
    """``loss.backward()``, through the grad scaler when there is one (fp16)."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def optimizer_step(optimizer, params, *, scaler=None, max_norm: float | None = None) -> None:
    """Unscale (fp16), clip the gradient norm of ``params`` to ``max_norm`` when set, step, update the scaler."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if max_norm:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
