"""`uta-bench import clip-benchmark FILE...`: bring clip_benchmark result JSONs into the results store."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    import_app = typer.Typer(no_args_is_help=True, help="Import results made by other tools into the store.")
    app.add_typer(import_app, name="import")

    @import_app.command("clip-benchmark")
    def clip_benchmark(
        files: List[str] = typer.Argument(..., help="Result JSONs written by `clip_benchmark eval`."),
        model: Optional[str] = typer.Option(None, "--model", "-m",
                                            help="Store them under this registered model (default: "
                                                 "open_clip:ARCH/TAG from each file)."),
        task: Optional[str] = typer.Option(None, "--task", help="Store them under this task card (default: "
                                                                "mapped from the clip_benchmark dataset)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
    ):
        """Load clip_benchmark results (source=imported) for `table --with-runs`, `check --against RUN_ID|MODEL`
        and `results`; every file is checked before anything is written, and a file imported before is
        skipped. Imported runs have no per-sample predictions (no `compare`, no paired CI)."""
        from uta_bench.cbimport import import_files
        from uta_bench.store import ResultsStore

        for it, n in import_files(ResultsStore(store), files, model=model, task=task):
            what = (f"{n} rows as run {it.run_id}" if n else f"already imported (run {it.run_id})")
            metrics = ", ".join(f"{k}={100 * v:.2f}" for k, v in it.metrics.items())
            typer.echo(f"{it.path}: {it.model} on {it.task}: {metrics} -> {what}")
