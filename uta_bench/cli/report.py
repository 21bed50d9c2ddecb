"""`uta-bench report -o report.html`: one self-contained HTML page about the results store."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @app.command("report")
    def report(
        output: str = typer.Option(..., "--output", "-o", help="HTML file to write (self-contained: open it "
                                                                  "anywhere, no network needed)."),
        run: Optional[str] = typer.Option(None, "--run", help="Run whose per-class accuracy is shown "
                                                              "(default: the latest measured run)."),
        baseline: Optional[str] = typer.Option(None, "--baseline",
                                               help="Also plot --run minus this run per task (Δ ± 95% CI)."),
        model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Only these models' runs "
                                                                              "in the paper tables."),
        tables: Optional[List[str]] = typer.Option(None, "--tables", "-t",
                                                   help="Paper tables: 1 2 3 4 5 6 7 8a 8b (8 = 8a,8b)."),
        band: float = typer.Option(0.5, "--band", min=0.0, help="Δ within ±BAND points is shown neutral "
                                                                "(grey), beyond it green (better) or red."),
        top_k: int = typer.Option(10, "--classes", min=1, help="Worst and best classes shown per task."),
        checks: int = typer.Option(10, "--checks", min=0, help="Latest check verdicts shown."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
    ):
        """Paper tables with our numbers and coloured Δ, Δ ± 95% CI plots per task, per-class accuracy of a
        run, the latest check verdicts and the provenance of every number, in one HTML file."""
        from uta_bench.errors import UtaBenchError
        from uta_bench.paper.rows import PAPER_TABLES
        from uta_bench.registry import get_card
        from uta_bench.report import collect, render_page
        from uta_bench.store import ResultsStore
        from uta_bench.validate import number, string_list, write_output, writable_file

        writable_file("--output", output)             # before any work
        band = number("--band", band, 0.0, unit="points")
        wanted = []
        for t in string_list("--tables", tables):
            wanted += ["8a", "8b"] if t == "8" else [t]
        for t in wanted:
            if t not in PAPER_TABLES:
                raise UtaBenchError(f"unknown table {t!r}; choose from 1 2 3 4 5 6 7 8 8a 8b")
        models = string_list("--model", model) or None
        for m in models or []:
            get_card(m)
        data = collect(ResultsStore(store), run_id=run, baseline=baseline, models=models,
                       tables=wanted or None, checks_limit=checks)
        write_output("--output", output, render_page(data, band=band, k=top_k))
        n_runs, n_pc = len(data.provenance), len(data.per_class)
        typer.echo(f"wrote {output} ({n_runs} run{'s' * (n_runs != 1)}, per-class accuracy of {n_pc} "
                   f"task{'s' * (n_pc != 1)})")
