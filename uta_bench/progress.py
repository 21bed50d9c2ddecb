"""One progress style for every long loop: counts, rate and ETA.

On a terminal: a rich bar. Otherwise (CI, Slurm, ``| tee``, a log file) a live bar would only show up as
one final frame, so a plain line goes to stderr about every 30 s instead
(``$UTA_BENCH_PROGRESS_INTERVAL`` seconds; ``interval=`` per bar), plus one when the loop ends::

    encode imagenet1k: 12,800/50,000 (25.6%)  41.2 img/s  elapsed 5m10s  ETA 15m03s
"""
from __future__ import annotations

import os
import sys
import time

DEFAULT_INTERVAL_S = 30.0


def make_progress(unit: str = "it"):
    """A rich ``Progress`` (counts, rate, elapsed, ETA) on a terminal, else a :class:`PlainProgressGroup`
    with the same calls (``with``, start/stop, add_task, update, advance) printing plain lines."""
    if not _is_terminal():
        return PlainProgressGroup(unit)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else f"- {unit}/s")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())


def _duration(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


def _interval(interval: float | None) -> float:
    if interval is not None:
        return float(interval)
    try:
        return float(os.environ.get("UTA_BENCH_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S


class PlainProgress:
    """Progress as plain lines on ``stream``: at most one per ``interval`` seconds, and one at the end."""

    def __init__(self, total: int | None, label: str, unit: str = "it", interval: float | None = None,
                 stream=None, completed: int = 0):
        self.total, self.label, self.unit = total, label, unit
        self.interval, self.stream = _interval(interval), stream
        self.done = self.start_done = completed
        self.t0 = self.last = time.monotonic()

    def line(self, now: float) -> str:
        elapsed = max(now - self.t0, 1e-9)
        rate = (self.done - self.start_done) / elapsed
        pct = f" ({100 * self.done / self.total:.1f}%)" if self.total else ""
        eta = _duration((self.total - self.done) / rate) if rate > 0 and self.total else "?"
        total = f"{self.total:,}" if self.total else "?"
        return (f"{self.label}: {self.done:,}/{total}{pct}  {rate:,.1f} {self.unit}/s  "
                f"elapsed {_duration(elapsed)}  ETA {eta}")

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, completed: int) -> None:
        self.done = completed
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._print(self.line(now))

    def finish(self) -> None:
        self._print(self.line(time.monotonic()).split("  ETA")[0] + "  done")


class PlainProgressGroup:
    """The subset of rich's ``Progress`` API the loops use, as plain lines (see :class:`PlainProgress`)."""

    def __init__(self, unit: str = "it", interval: float | None = None):
        self.unit, self.interval, self.tasks = unit, interval, []

    def add_task(self, description: str, total: float | None = None, completed: int = 0, visible: bool = True,
                 **_) -> int:
        bar = PlainProgress(total, description, self.unit, self.interval, completed=int(completed))
        bar.visible = visible
        self.tasks.append(bar)
        return len(self.tasks) - 1

    def update(self, task: int, *, advance: float | None = None, completed: float | None = None,
               description: str | None = None, **_) -> None:
        bar = self.tasks[task]
        if description is not None:
            bar.label = description
        if bar.visible and (advance is not None or completed is not None):
            bar.update(int(completed if completed is not None else bar.done + advance))

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for bar in self.tasks:
            if bar.visible and bar.done > bar.start_done:
                bar.finish()
            bar.visible = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        return False


def _is_terminal() -> bool:
    from rich.console import Console

    return Console().is_terminal


class progress_bar:
    """``with progress_bar(enabled, total, label, unit) as advance: ... advance(n)`` -- a rich bar (counts,
    rate, ETA) on a terminal, plain lines every ``interval`` s otherwise; a no-op ``advance`` when disabled."""

    def __init__(self, enabled: bool, total: int, label: str, unit: str = "it", interval: float | None = None):
        self.enabled, self.total, self.label, self.unit = enabled, total, label, unit
        self.interval = interval

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        self._p = make_progress(self.unit)
        if isinstance(self._p, PlainProgressGroup):
            self._p.interval = self.interval
        self._p.__enter__()
        task = self._p.add_task(self.label, total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False
