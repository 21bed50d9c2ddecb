"""`uta-bench models`, `tasks`, `results`, `version`, `info`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def name_table(title: str, columns: list[str], rows: list[list[str]], names: tuple[str, ...],
               droppable: tuple[str, ...] = (), width: int | None = None):
    """A rich Table whose ``names`` columns (model names, task names, run ids: what users copy) are never
    cut or wrapped, whatever the terminal width. When the rows do not fit ``width``, the ``droppable``
    columns are left out (first named, first dropped) and the table says so; other columns fold."""
    from rich.console import Console
    from rich.table import Table

    width = width or Console().width

    def natural(cols):
        return sum(max([len(c)] + [len(r[columns.index(c)]) for r in rows]) + 3 for c in cols) + 1

    keep, dropped = list(columns), []
    for col in droppable:
        if natural(keep) <= width:
            break
        keep.remove(col)
        dropped.append(col)
    caption = f"({', '.join(dropped)} left out at {width} columns; widen the terminal or use --export)" \
        if dropped else None
    t = Table(title=title, caption=caption)
    for col in keep:
        if col in names:
            t.add_column(col, no_wrap=True, min_width=max([len(col)] + [len(r[columns.index(col)]) for r in rows]))
        else:
            t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*(r[columns.index(c)] for c in keep))
    return t


_SPEC_NOTE = ("Any other open_clip model: --model open_clip:ARCH/TAG (an open_clip pretrained tag, e.g. "
              "open_clip:ViT-B-32/laion2b_s34b_b79k), open_clip:ARCH (no weights: --random-init or --checkpoint) "
              "or hf-hub:ORG/NAME (a hub repo with open_clip_config.json); the card is made from open_clip's "
              "own config.")


def _store_name(model: str | None) -> str | None:
    """An open_clip:/hf-hub: spec as the store names it (canonical); other names as given."""
    from uta_bench.speccards import canonical, is_spec

    return canonical(model) if model and is_spec(model) else model


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @app.command()
    def models(all: bool = typer.Option(False, "--all", help="Include test-only models.")):
        """List registered models; any other open_clip model by spec: open_clip:ARCH/TAG, hf-hub:ORG/NAME."""
        from rich.console import Console

        from uta_bench.registry import cards

        rows = []
        for name, c in cards().items():
            if "test" in c.tags and not all:
                continue
            paper = next((f"T{t}: {row}" for t, row in c.paper.rows().items() if row), "-") if c.paper else "-"
            w = c.weights
            src = (f"hf:{w.hf_repo}/{w.filename}" if w.hf_repo else
                   f"open_clip:{w.open_clip_pretrained}" if w.open_clip_pretrained else "-")
            rows.append([name + (f" -> {c.alias_of}" if c.alias_of else ""), c.family, c.arch,
                         str(c.image_size), paper, src])
        console = Console()
        console.print(name_table("uta-bench models", ["name", "family", "arch", "image", "paper row", "weights"],
                                 rows, ("name",), droppable=("weights", "paper row", "family")))
        console.print(_SPEC_NOTE, highlight=False, markup=False)

    @app.command()
    def tasks():
        """List task cards (tasks/*.yaml and $UTA_BENCH_TASKS)."""
        from rich.console import Console

        from uta_bench.taskcards import all_cards

        rows = [[name, c.type, str(c.version), ", ".join(c.tasks) if c.is_suite else str(c.expected_samples or "-"),
                 c.description] for name, c in all_cards().items()]
        Console().print(name_table("uta-bench tasks", ["task", "type", "version", "expected samples", "description"],
                                   rows, ("task",)))

    @app.command()
    def results(
        run: Optional[str] = typer.Option(None, "--run", help="Only this run id."),
        model: Optional[str] = typer.Option(None, "--model", help="Only this model."),
        task: Optional[str] = typer.Option(None, "--task", help="Only this task."),
        metric: Optional[str] = typer.Option(None, "--metric",
                                             help="Only this metric (top1 or clip_benchmark's acc1, ...)."),
        export: Optional[str] = typer.Option(None, "--export", help="Write rows to FILE (.csv/.json/.parquet)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Export format (default: from suffix)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE",
                                            help="sqlite path or database URL."),
        limit: int = typer.Option(50, "--limit", min=1, help="Rows to show (latest, >= 1)."),
    ):
        """Query the results store; show the latest rows or export them."""
        from rich.console import Console

        from uta_bench.store import ResultsStore
        from uta_bench.validate import redact, writable_file

        if export:
            writable_file("--export", export)
        model = _store_name(model)
        s = ResultsStore(store)
        if metric is not None:
            from uta_bench.metricnames import canonical_metric

            metric = canonical_metric(metric)
        if export:
            try:
                path = s.export(export, fmt, run_id=run, model=model, task=task, metric=metric)
            except OSError as e:
                from uta_bench.errors import UtaBenchError

                raise UtaBenchError(f"cannot write --export {export}: {e.strerror or e}; nothing was written "
                                    "there") from None
            typer.echo(f"wrote {path}")
            return
        df = s.df(run_id=run, model=model, task=task, metric=metric)
        rows = []
        for r in df.tail(limit).itertuples():
            ci = f"[{r.ci_low:.4f}, {r.ci_high:.4f}]" if r.ci_low == r.ci_low and r.ci_low is not None else "-"
            rows.append([r.run_id, str(r.model), r.task, r.metric, f"{r.value:.4f}", ci, str(r.n),
                         str(r.precision), str(r.ended_at)])
        cols = ["run_id", "model", "task", "metric", "value", "95% CI", "n", "precision", "ended_at"]
        Console().print(name_table(f"results ({len(df)} rows in {redact(s.url)})", cols, rows, ("run_id", "model", "task"),
                                   droppable=("ended_at", "precision", "95% CI", "n")))

    @app.command()
    def version():
        """Print the harness version and git commit."""
        from uta_bench import __version__
        from uta_bench.provenance import git_commit

        typer.echo(f"uta-bench {__version__} ({git_commit() or 'no git'})")

    @app.command()
    def info():
        """Print the version and where uta-bench reads and writes: task cards, recipes, paper rows,
        results store, caches."""
        import os
        import sys

        from uta_bench import __version__
        from uta_bench import paths
        from uta_bench.provenance import git_commit

        root, checkout = paths.repo_root(), paths.checkout_root()
        store = os.environ.get("UTA_BENCH_STORE") or str(paths.default_store_path())
        rows = [("version", f"uta-bench {__version__} ({git_commit() or 'no git'})"),
                ("package", str(Path(__file__).resolve().parent.parent)),
                ("python", f"{sys.executable} ({sys.version.split()[0]})"),
                ("installed from", f"checkout {checkout}" if checkout else "package (non-editable)"),
                ("task cards", str(root / "tasks") if root else "- (none found)"),
                ("recipes", str(root / "recipes") if root else "- (none found)"),
                ("paper rows", os.environ.get("UTA_BENCH_PAPER_DIR") or (str(root / "results" / "paper") if root else "-")),
                ("results store", store),
                ("cache (UTA_BENCH_HOME)", str(paths.home()))]
        for key, value in rows:
            typer.echo(f"{key + ':':<24}{value}")
