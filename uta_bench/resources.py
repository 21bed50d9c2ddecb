"""``--device auto``, ``--workers auto``, ``--batch-size auto``: settings that fit the machine.

Every command resolves its three options here and nowhere else:

* device ``auto``: ``cuda`` when ``torch.cuda.is_available()`` (``cuda:LOCAL_RANK`` under torchrun),
  else ``cpu``. An explicit device is checked against the hardware (``--device cuda`` without a GPU
  is a one-line error).
* workers ``auto``: from the CPUs this process may use (``os.sched_getaffinity``) shared by the
  torchrun processes of this node. On CUDA all but one core decode images (at most 8); on the CPU the
  model's own threads need the cores, so one worker per 4 cores (at most 4); 0 on a single core.
* batch size ``auto``: a per-device starting value (``EVAL_BATCH``: 256 images on CUDA, 64 elsewhere)
  for evaluation. Evaluation loops run each batch through :class:`OomBackoff`, which halves the batch
  on CUDA out-of-memory and retries the same images (nothing lost, nothing counted twice). Training
  commands take their recipe's batch (a hyperparameter of the result) and never back off.

:func:`resolve` returns the chosen values with the names of those chosen automatically; commands print
:meth:`Resources.describe` and store :meth:`Resources.record` in the run's config.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from uta_bench.errors import UtaBenchError

AUTO = "auto"
EVAL_BATCH = {"cuda": 256}          # evaluation batch by device type; others: EVAL_BATCH_OTHER
EVAL_BATCH_OTHER = 64
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    device: str
    workers: int | None
    batch_size: int | None
    auto: tuple[str, ...] = ()      # which of "device", "workers", "batch_size" were chosen here

    def describe(self) -> str:
        return describe(self.device, self.workers, self.batch_size, self.auto)

    def record(self) -> dict:
        """What the run's config stores."""
        return {"device": self.device, "workers": self.workers, "batch_size": self.batch_size,
                "auto": list(self.auto)}


def describe(device, workers, batch_size, auto=()) -> str:
    """One line: ``device cuda:0 (auto), workers 8 (auto), batch size 256 (auto)`` (a setting that is None
    is left out, or "from the recipe" when it was auto)."""
    parts = []
    for name, label, value in (("device", "device", device), ("workers", "workers", workers),
                               ("batch_size", "batch size", batch_size)):
        if value is None and name not in auto:
            continue
        value = "from the recipe" if value is None else value
        parts.append(f"{label} {value}" + (" (auto)" if name in auto else ""))
    return ", ".join(parts)


def count_option(where: str, value, minimum: int) -> int | str:
    """``auto`` or an integer >= ``minimum`` (command-line text or a config value)."""
    from uta_bench import validate as V

    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return V.integer(where, value, minimum=minimum)
    except UtaBenchError:
        raise UtaBenchError(f"{where} must be an integer >= {minimum}, not {value!r} (or auto: chosen for "
                            "this machine)") from None


def option(minimum: int):
    """typer callback of a ``--workers`` / ``--batch-size`` option: ``auto`` or an integer >= ``minimum``;
    anything else is a usage error naming the option (exit 2)."""
    def check(value):
        if value is None:
            return None
        try:
            return count_option("", value, minimum)
        except UtaBenchError:
            import typer

            raise typer.BadParameter(f"must be auto or an integer >= {minimum}, not {value!r}") from None
    return check


def resolve_device(value: str | None, where: str = "--device") -> str:
    """``auto`` (or None) -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; an explicit device
    is checked against the hardware."""
    import torch

    from uta_bench import validate as V

    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return "cpu"
    return V.device(where, value)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):       # not Linux
        return os.cpu_count() or 1


def auto_workers(device_type: str) -> int:
    """DataLoader workers for one process on ``device_type`` (see the module docstring)."""
    local_world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))))
    share = usable_cpus() // local_world
    if share <= 1:
        return 0
    if device_type == "cuda":
        return min(8, share - 1)
    return min(4, share // 4)


def auto_batch(device_type: str) -> int:
    return EVAL_BATCH.get(device_type, EVAL_BATCH_OTHER)


def resolve(device="auto", workers="auto", batch_size="auto", *, batch_from_recipe: bool = False,
            device_option: str = "--device") -> Resources:
    """The settings a command runs with (None: not a setting of this command, or the recipe's).
    ``batch_from_recipe``: training commands, whose ``auto`` batch is the recipe's (stays None)."""
    import torch

    auto = []
    dev = resolve_device(device, device_option)
    if device is None or str(device).strip().lower() == AUTO:
        auto.append("device")
    dev_type = torch.device(dev).type
    w = count_option("--workers", workers, 0) if workers is not None else None
    if w == AUTO:
        w = auto_workers(dev_type)
        auto.append("workers")
    b = count_option("--batch-size", batch_size, 1) if batch_size is not None else None
    if b == AUTO:
        b = None if batch_from_recipe else auto_batch(dev_type)
        auto.append("batch_size")
    return Resources(dev, w, b, tuple(auto))


class OomBackoff:
    """Runs a batch callable in pieces of at most ``size`` rows; on CUDA out-of-memory (``auto``) halves
    ``size`` and runs the failed piece again, so every row is computed exactly once in the result.

    Without ``auto`` (an explicit ``--batch-size``) an out-of-memory is a one-line error, as it is at
    batch size 1. ``size`` stays reduced for the rest of the run; ``backoffs`` counts the halvings."""

    def __init__(self, size: int, auto: bool = True, what: str = "--batch-size"):
        self.size, self.auto, self.what, self.backoffs = int(size), auto, what, 0

    def __call__(self, fn, *tensors):
        import torch

        n, start, outs = len(tensors[0]), 0, []
        while start < n:
            end = min(start + self.size, n)
            try:
                out = fn(*(t[start:end] for t in tensors))
            except torch.OutOfMemoryError:
                out = None                  # leave the except block first: its traceback holds the memory
            if out is None:
                self._shrink()
                continue
            outs.append(out)
            start = end
        return torch.cat(outs) if len(outs) != 1 else outs[0]

    def _shrink(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if not self.auto:
            raise UtaBenchError(f"CUDA out of memory at {self.what} {self.size}; lower {self.what} or pass "
                                f"{self.what} auto (halves the batch until it fits)")
        if self.size <= 1:
            raise UtaBenchError("CUDA out of memory at batch size 1; free the GPU (other processes), use "
                                "--precision bf16, or run on another device (--device cpu)")
        new = max(1, self.size // 2)
        log.warning("CUDA out of memory at batch size %d; running the same samples again at %d",
                    self.size, new)
        self.size = new
        self.backoffs += 1
