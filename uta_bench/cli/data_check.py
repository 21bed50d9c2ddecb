"""`uta-bench data check [TASK...]`: are the datasets there, complete, and what exactly are they."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import data_app

    @data_app.command("check")
    def check(
        tasks: Optional[List[str]] = typer.Argument(None, help="Tasks or suites (default: the zeroshot suite)."),
        data_root: Optional[str] = typer.Option(None, "--data-root", envvar="UTA_BENCH_DATA",
                                                help="Folder holding the datasets."),
        no_hash: bool = typer.Option(False, "--no-hash", help="Counts only; skip the file sha256 manifest."),
    ):
        """Check presence and sample counts; write a manifest (file sha256s) that runs record."""
        from rich.console import Console

        from uta_bench.data.check import check_task
        from uta_bench.data.resolve import data_root as root_of
        from uta_bench.taskcards import expand

        cards = expand(list(tasks or ["zeroshot"]))
        root = root_of(data_root)
        results = [check_task(c, root, do_hash=not no_hash) for c in cards]
        show_results(Console(), results, root)


def show_results(console, results, root) -> None:
    """The data check table; a data error (exit 2) when a task is not ready (exit 1 is reserved for a
    regression found by `check`)."""
    from rich.table import Table

    from uta_bench.errors import UtaBenchError

    t = Table(title=f"data check ({root})")
    for col in ("task", "status", "format", "images", "expected", "captions", "folder / problem"):
        t.add_column(col)
    for r in results:
        caps = "-" if r.captions is None else f"{r.captions:,}/{r.expected_captions or '?'}"
        t.add_row(r.task, "[green]ok[/green]" if r.ok else "[red]FAIL[/red]", r.fmt,
                  "-" if r.samples is None else f"{r.samples:,}",
                  "-" if r.expected is None else f"{r.expected:,}", caps,
                  r.folder if r.ok else r.message)
    console.print(t)
    bad = [r for r in results if not r.ok]
    if bad:
        raise UtaBenchError(f"{len(bad)} of {len(results)} tasks not ready: " +
                            "; ".join(f"{r.task}: {r.message}" for r in bad))
    console.print(f"all {len(results)} tasks ready; manifests written")
