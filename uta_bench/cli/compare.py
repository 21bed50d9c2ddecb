"""`uta-bench compare RUN_A RUN_B`: paired per-sample comparison (McNemar / paired bootstrap)."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        run_a: str = typer.Argument(..., help="Baseline run id."),
        run_b: str = typer.Argument(..., help="Candidate run id (delta = B - A)."),
        tasks: Optional[List[str]] = typer.Option(None, "--tasks", "-t", help="Only these tasks."),
        metrics: Optional[List[str]] = typer.Option(None, "--metrics",
                                                    help="Only these metrics (top1 / acc1, top5 / acc5, "
                                                         "image_retrieval_recall@K, ...)."),
        method: str = typer.Option("both", "--method",
                                   help="mcnemar | bootstrap | both (p from McNemar, CI from bootstrap)."),
        n_boot: int = typer.Option(10000, "--bootstrap", min=100, help="Bootstrap resamples."),
        seed: int = typer.Option(0, "--seed"),
        json_out: Optional[str] = typer.Option(None, "--json", help="Also write the results as JSON."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
    ):
        """Delta, 95% CI and p-value per task from the two runs' saved per-sample predictions."""
        import json

        from rich.console import Console
        from rich.table import Table

        from uta_bench.compare import compare_runs
        from uta_bench.store import ResultsStore

        from uta_bench.errors import UtaBenchError
        from uta_bench.metricnames import outcome_key

        tasks = [t for item in (tasks or []) for t in item.split(",") if t] or None
        names = [m for item in (metrics or []) for m in item.split(",") if m]
        keys = [outcome_key(m) for m in names] or None
        if keys and None in keys:
            bad = names[keys.index(None)]
            raise UtaBenchError(f"--metrics {bad}: not a per-sample outcome to compare; use top1/acc1, top5/acc5 "
                                "or image_retrieval_recall@K / text_retrieval_recall@K")
        results = compare_runs(ResultsStore(store), run_a, run_b, tasks=tasks, keys=keys, method=method,
                               n_boot=n_boot, seed=seed)
        t = Table(title=f"paired comparison: B={run_b} vs A={run_a} (delta = B - A)")
        for col in ("task", "outcome", "n", "A", "B", "delta", "95% CI", "A only / B only", "p", "test"):
            t.add_column(col, justify="left" if col in ("task", "outcome", "test") else "right")
        for r in results:
            disc = f"{r.b_only_a} / {r.c_only_b}" if r.b_only_a is not None else "-"
            style = ("green" if r.delta > 0 else "red") if r.significant else None
            t.add_row(r.task, r.key, str(r.n), f"{100 * r.value_a:.2f}", f"{100 * r.value_b:.2f}",
                      f"{100 * r.delta:+.2f}", f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]", disc,
                      f"{r.p_value:.3g}", r.test, style=style)
        console = Console()
        (console if console.is_terminal else Console(width=160)).print(t)
        if json_out:
            from uta_bench.paths import atomic_write_text

            atomic_write_text(json_out, json.dumps({"run_a": run_a, "run_b": run_b,
                                                    "results": [r.to_dict() for r in results]}, indent=1))
            typer.echo(f"wrote {json_out}")
