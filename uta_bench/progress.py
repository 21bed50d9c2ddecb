"""One progress-bar style for every long loop: counts, rate and ETA (rich)."""
from __future__ import annotations


def make_progress(unit: str = "it"):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else f"- {unit}/s")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())


class progress_bar:
    """``with progress_bar(enabled, total, label, unit) as advance: ... advance(n)`` — a rich bar
    (counts, rate, ETA) when enabled, else a no-op ``advance``."""

    def __init__(self, enabled: bool, total: int, label: str, unit: str = "it"):
        self.enabled, self.total, self.label, self.unit = enabled, total, label, unit

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        self._p = make_progress(self.unit)
        self._p.__enter__()
        task = self._p.add_task(self.label, total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False
