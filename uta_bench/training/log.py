"""The one training log: ``OUT/train_log.jsonl`` (one JSON object per logged step) and, when
``tensorboard`` is installed, TensorBoard scalars in ``OUT/tensorboard/``.

A line is ``{"step": N, <scalar>: value, ..., "time": unix seconds}``. A resumed run passes
``start_step``: lines (and TensorBoard events) after that step, written by the interrupted run after its
last saved state, are dropped so the log reads like one uninterrupted run.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.paths import atomic_write_text

log = logging.getLogger(__name__)
LOG_NAME, TB_DIR = "train_log.jsonl", "tensorboard"


def _summary_writer():
    """TensorBoard's SummaryWriter class, or None when the ``tensorboard`` package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def read_log(path) -> list[dict]:
    """The lines of a training log: ``path`` is the JSONL file or the run directory holding
    ``train_log.jsonl`` (empty when there is none)."""
    p = Path(path)
    if p.is_dir():
        p = p / LOG_NAME
    if not p.is_file():
        return []
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]


class TrainLogger:
    def __init__(self, out_dir, *, enabled: bool = True, tensorboard: bool | None = None,
                 start_step: int | None = None):
        """``enabled=False`` on non-main ranks (nothing is written). ``tensorboard``: True requires it,
        None uses it when installed, False never. ``start_step``: resuming after that step (0: fresh run,
        any old log is replaced); None appends to whatever is there."""
        self.enabled, self.path, self._tb = enabled, Path(out_dir) / LOG_NAME, None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if start_step is not None:
            keep = [row for row in read_log(self.path) if row["step"] <= start_step]
            atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in keep))
        writer = _summary_writer() if tensorboard is not False else None
        if tensorboard and writer is None:
            raise UtaBenchError("TensorBoard logging was asked for but the 'tensorboard' package is not "
                                "installed: pip install tensorboard (or the uta-bench[tensorboard] extra)")
        if writer is not None:
            self._tb = writer(log_dir=str(Path(out_dir) / TB_DIR),
                              purge_step=start_step + 1 if start_step is not None else None)
        log.debug("training log %s (TensorBoard %s)", self.path, "on" if self._tb else "off")
        self._file = self.path.open("a")

    def log(self, step: int, **scalars: float) -> None:
        if not self.enabled:
            return
        values = {k: (v.item() if hasattr(v, "item") else v) for k, v in scalars.items()}
        self._file.write(json.dumps({"step": int(step), **values, "time": time.time()}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, global_step=int(step))

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
