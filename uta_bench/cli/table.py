"""`uta-bench table --paper [--with-runs]` and `uta-bench plot delta`."""
from __future__ import annotations

from typing import List, Optional

import typer


def _split(items) -> list[str]:
    return [t for item in (items or []) for t in str(item).split(",") if t]


def comparison_for(store: str | None, models: list[str] | None, tables: list[str] | None):
    from uta_bench.paper.mapping import latest_measured, paper_comparison
    from uta_bench.registry import canonical_name
    from uta_bench.store import ResultsStore

    # unknown name: "unknown model ...; did you mean ..."; open_clip:/hf-hub: specs as the store names them
    models = [canonical_name(m) for m in models] if models else models
    measured = latest_measured(ResultsStore(store), models)
    return paper_comparison(measured, tables=tables)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import plot_app

    @app.command("table")
    def table(
        paper: bool = typer.Option(False, "--paper", help="Render the paper's Tables 1-8 in the paper's layout."),
        with_runs: bool = typer.Option(False, "--with-runs",
                                       help="Put our latest measured values (95% CI) and deltas under the paper's."),
        model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Only these models' runs (names or open_clip:/hf-hub: specs)."),
        tables: Optional[List[str]] = typer.Option(None, "--tables", "-t",
                                                   help="Tables to show: 1 2 3 4 5 6 7 8a 8b (8 = 8a,8b)."),
        fmt: str = typer.Option("rich", "--format", "-f", help="rich | markdown | csv | latex | html"),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="Write to FILE instead of the terminal."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE",
                                            help="sqlite path or database URL."),
    ):
        """The paper's tables from results/paper/*.csv, optionally with our measured runs beside them."""
        from uta_bench.errors import UtaBenchError
        from uta_bench.paper.grid import build_grid, paper_tables_with_runs
        from uta_bench.paper.render import FORMATS, print_rich, render
        from uta_bench.paper.rows import PAPER_TABLES

        if not paper:
            raise UtaBenchError("only the paper layout exists so far: add --paper (see `uta-bench results` "
                                "for raw rows)")
        if fmt not in FORMATS:
            raise UtaBenchError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
        wanted = []
        for t in _split(tables):
            wanted += ["8a", "8b"] if t == "8" else [t]
        for t in wanted:
            if t not in PAPER_TABLES:
                raise UtaBenchError(f"unknown table {t!r}; choose from 1 2 3 4 5 6 7 8 8a 8b")
        comparison = None
        if with_runs:
            comparison = comparison_for(store, _split(model) or None, wanted or None)
            if comparison.empty:
                who = f"model(s) {', '.join(_split(model))}" if model else "any model"
                raise UtaBenchError(f"no measured rows of {who} map to a paper cell; run `uta-bench run "
                                    "zeroshot` first, or drop --with-runs")
            if not wanted:
                wanted = paper_tables_with_runs(comparison)
        grids = [build_grid(t, comparison) for t in (wanted or PAPER_TABLES)]
        if output:
            from uta_bench.validate import write_output

            write_output("--output", output, render(grids, fmt))
            typer.echo(f"wrote {output}")
        elif fmt == "rich":
            print_rich(grids)
        else:
            typer.echo(render(grids, fmt), nl=False)

    @plot_app.command("delta")
    def plot_delta(
        model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Only these models."),
        tables: Optional[List[str]] = typer.Option(None, "--tables", "-t", help="Only these paper tables."),
        output: str = typer.Option("results/delta.png", "--output", "-o", help="PNG file to write."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
    ):
        """Bars of measured minus paper (points) per task cell, with our 95% CI as error bars."""
        from uta_bench.errors import UtaBenchError
        from uta_bench.paper.plot import plot_delta as draw

        comparison = comparison_for(store, _split(model) or None, _split(tables) or None)
        # one bar per measurement (Table 4's ImageNet ZS repeats Table 1's IN-1K)
        comparison = comparison[comparison.delta.notna()].drop_duplicates(["model", "task", "metric"])
        if comparison.empty:
            raise UtaBenchError("no measured value has a paper value to compare with; nothing to plot")
        draw(comparison, output)
        typer.echo(f"wrote {output} ({len(comparison)} cells)")
