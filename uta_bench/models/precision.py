"""What the CPU offers for bf16, and preparing a model for bf16 inference on it."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError as e:
        log.debug("cannot read /proc/cpuinfo: %s", e)
    return set()


def cpu_bf16_support() -> str:
    """'amx_bf16 avx512_bf16' etc.: the native bf16 instruction sets of this CPU ('none' if none)."""
    have = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"})
    return " ".join(have) or "none"


def cast_matmul_weights(model, dtype) -> int:
    """Store the weights of Linear / Conv layers in ``dtype`` once (returns how many tensors were cast).

    Under CPU autocast these layers run in ``dtype`` anyway: autocast casts their fp32 weights again on
    every call. Casting them once at load runs the same bf16 matmuls without the per-call casts (oneDNN
    may pick another kernel for some shapes, so results agree at bf16 resolution, not bit for bit); norms,
    embeddings, attention modules (nn.MultiheadAttention) and everything autocast keeps in fp32 stay fp32."""
    import torch

    n = 0
    # nn.MultiheadAttention picks its kernel from its parameters' dtypes: leave it as it is
    skip = {id(m.out_proj) for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)}
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)) and id(mod) not in skip:
            for name in ("weight", "bias"):
                p = getattr(mod, name, None)
                if p is not None and p.dtype == torch.float32:
                    p.data = p.data.to(dtype)
                    n += 1
    return n


def prepare_for_inference(loaded) -> None:
    """bf16 on CPU: store Linear/Conv weights in bf16 once (the bf16 matmuls autocast runs, fewer casts).

    Only for evaluation-only models (the zero-shot runner, `check --sequential`): training and export
    paths keep their fp32 weights."""
    import torch

    if loaded.device.type == "cpu" and loaded.precision_run == "bf16-autocast":
        n = cast_matmul_weights(loaded.model, torch.bfloat16)
        log.info("bf16 on CPU: %d Linear/Conv tensors stored in bf16 for inference", n)
