"""One atomic training-state file: model, optimizer, grad scaler, step, data position, RNG, extras.

The LR schedule is a pure function of the step (``training.schedule``), so the step *is* the scheduler
state. The file is written through a temp file + ``os.replace`` (a crash leaves the previous file, never a
partial one) and holds only tensors and plain containers, so it loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from uta_bench.errors import CheckpointError
from uta_bench.paths import atomic_file

log = logging.getLogger(__name__)
FORMAT = "uta-bench-training-state/1"


@dataclass
class TrainingState:
    step: int
    data_position: object
    extra: dict = field(default_factory=dict)


def rng_state() -> dict:
    """Python, numpy, torch CPU and (when present) CUDA generator states as tensors and plain values."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"], "has_gauss": n["has_gauss"], "gauss": n["gauss"],
                         "state": {"key": np.array(n["key"], dtype=np.uint32), "pos": n["pos"]}})
    torch.random.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path, *, model, optimizer, step: int, data_position, scaler=None,
                        extra: dict | None = None) -> None:
    """Write the full state atomically to ``path``. ``model`` is anything with ``state_dict()``."""
    blob = {"format": FORMAT, "step": int(step), "data_position": data_position,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(), "extra": dict(extra or {})}
    with atomic_file(path) as f:
        torch.save(blob, f)


def read_training_state(path) -> dict:
    """The raw state dict at ``path`` (weights_only), or a one-line CheckpointError saying what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"training state {p} does not exist")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated or foreign file: one line, not a traceback
        raise CheckpointError(f"cannot read training state {p}: {str(e).splitlines()[0]}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a uta-bench training state (no '{FORMAT}' marker)")
    return blob


def load_training_state(path, *, model, optimizer, scaler=None, blob: dict | None = None) -> TrainingState:
    """Restore model, optimizer, scaler and every RNG in place from ``path``; returns step, data position
    and extras. ``blob``: the already-read contents of ``path`` (from :func:`read_training_state`)."""
    blob = blob if blob is not None else read_training_state(path)
    try:
        model.load_state_dict(blob["model"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit this model: {str(e).splitlines()[0]}") from None
    optimizer.load_state_dict(blob["optimizer"])
    if scaler is not None:
        if blob["scaler"] is None:
            log.info("%s has no grad-scaler state (saved without fp16); the scaler starts fresh", path)
        else:
            scaler.load_state_dict(blob["scaler"])
    set_rng_state(blob["rng"])
    return TrainingState(int(blob["step"]), blob["data_position"], dict(blob["extra"]))
