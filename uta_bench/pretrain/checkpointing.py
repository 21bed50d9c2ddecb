"""Pre-training checkpoints: full training state, written atomically, read with weights_only=True.

Contents: student (with [MASK] token), optimiser, scheduler, grad scaler, RNG states (torch CPU/CUDA,
numpy, python), the global step (the data position: see ``uta_bench.pretrain.data``), the loss
history so far and the recipe. ``export_student`` writes the student alone in the released UTA key
layout so it loads with ``load_model(name, checkpoint=PATH)``.
"""
from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import torch

from uta_bench.errors import CheckpointError
from uta_bench.paths import atomic_write_bytes, atomic_write_text

FORMAT = "uta-bench-pretrain/1"


def _rng_state() -> dict:
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.random.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"], "has_gauss": n["has_gauss"], "gauss": n["gauss"],
                         "state": {"key": np.array(n["key"], dtype=np.uint32), "pos": n["pos"]}})
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(path: str | Path, student, opt, sched, scaler, step: int, history: list[dict],
                    config: dict) -> None:
    blob = {"format": FORMAT, "step": step, "student": student.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "rng": _rng_state(),
            "history": history, "config": config}
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, student, opt, sched, scaler) -> tuple[int, list[dict]]:
    """Restore everything in place; returns ``(step, history)``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"resume checkpoint {p} does not exist")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated / foreign file
        raise CheckpointError(f"cannot read pre-training checkpoint {p}: {str(e).splitlines()[0]}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a uta-bench pre-training checkpoint (no '{FORMAT}' marker)")
    try:
        student.load_state_dict(blob["student"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{p} does not fit this student: {str(e).splitlines()[0]}") from None
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    scaler.load_state_dict(blob["scaler"])
    _set_rng_state(blob["rng"])
    return int(blob["step"]), list(blob["history"])


def write_loss_csv(path: str | Path, history: list[dict]) -> None:
    cols = ["step", "epoch", "lr", "train_loss", "val_loss", "step_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({c: row.get(c, "") for c in cols})
    atomic_write_text(path, buf.getvalue())


def read_loss_csv(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"loss file {p} does not exist (pre-training writes OUTPUT_DIR/loss.csv)")
    rows = []
    with p.open() as f:
        for r in csv.DictReader(f):
            rows.append({k: (float(v) if v not in ("", None) else None) for k, v in r.items()})
    return rows


def export_student(path: str | Path, student, arch: str, text_state: dict | None = None,
                   logit_scale: torch.Tensor | None = None) -> Path:
    """The student's vision tower (+ optionally a teacher's text tower) in the released key layout."""
    from safetensors.torch import save_file

    from uta_bench.models.uta import internal_to_official

    sd = {f"visual.{k}": v.detach().cpu() for k, v in student.visual.state_dict().items()}
    for k, v in (text_state or {}).items():
        sd[f"text.{k}"] = v.detach().cpu()
    if logit_scale is not None:
        sd["logit_scale"] = logit_scale.detach().cpu().reshape(())
    official = internal_to_official(sd, arch)
    p = Path(path)
    buf_path = p.with_name(f".{p.name}.tmp")
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in official.items()}, str(buf_path))
    buf_path.replace(p)
    return p
