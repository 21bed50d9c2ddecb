"""Pre-training outputs beyond the resumable state (which is ``uta_bench.training.state``, in
``OUTPUT_DIR/last.pt``): the loss curve read back from the training log, and ``export_student``, which
writes the student alone in the released UTA key layout so it loads with
``load_model(name, checkpoint=PATH)``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from uta_bench.errors import CheckpointError
from uta_bench.paths import atomic_write_bytes
from uta_bench.training.log import LOG_NAME, read_log


def read_loss_log(path: str | Path) -> list[dict]:
    """Loss-curve rows (step, train_loss, val_loss?) from a run's ``train_log.jsonl`` (or its directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / LOG_NAME
    if not p.is_file():
        raise CheckpointError(f"loss log {p} does not exist (pre-training writes OUTPUT_DIR/{LOG_NAME})")
    rows = read_log(p)
    if not rows or "train_loss" not in rows[0]:
        raise CheckpointError(f"{p} holds no pre-training loss rows (no 'train_loss')")
    return rows


def export_student(path: str | Path, student, arch: str, text_state: dict | None = None,
                   logit_scale: torch.Tensor | None = None) -> Path:
    """The student's vision tower (+ optionally a teacher's text tower) in the released key layout."""
    from safetensors.torch import save

    from uta_bench.models.uta import internal_to_official

    sd = {f"visual.{k}": v.detach().cpu() for k, v in student.visual.state_dict().items()}
    for k, v in (text_state or {}).items():
        sd[f"text.{k}"] = v.detach().cpu()
    if logit_scale is not None:
        sd["logit_scale"] = logit_scale.detach().cpu().reshape(())
    official = internal_to_official(sd, arch)
    atomic_write_bytes(path, save({k: v.contiguous() for k, v in official.items()}))
    return Path(path)
