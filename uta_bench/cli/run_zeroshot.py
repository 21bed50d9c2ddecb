"""`uta-bench run zeroshot`."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @run_app.command("zeroshot")
    def zeroshot(
        model: str = typer.Option(..., "--model", "-m", help="Registered model name (see `uta-bench models`)."),
        tasks: List[str] = typer.Option(["sample_photos"], "--tasks", "-t",
                                        help="Task names, suites, card .yaml files or ImageFolder paths."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights file (.safetensors/.pt)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                              help="Allow pickled checkpoints that execute code when loaded."),
        data_root: Optional[str] = typer.Option(None, "--data-root", envvar="UTA_BENCH_DATA"),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        batch_size: int = typer.Option(64, "--batch-size", min=1),
        workers: int = typer.Option(0, "--workers", min=0),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images per task."),
        precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16"),
        device: str = typer.Option("cpu", "--device"),
        seed: int = typer.Option(0, "--seed"),
        random_init: bool = typer.Option(False, "--random-init",
                                         help="Skip weights (smoke tests of the pipeline; numbers are chance)."),
    ):
        """Zero-shot classification on task cards; every number goes to the results store."""
        from rich.console import Console

        from uta_bench.runner import RunConfig, run_zeroshot

        console = Console()
        tasks = [t for item in tasks for t in item.split(",") if t]

        def report(card, metrics):
            txt = "  ".join(f"{m.metric}={100 * m.value:.2f}% [{100 * m.ci_low:.1f}, {100 * m.ci_high:.1f}]"
                            for m in metrics)
            console.print(f"[bold]{card.task}[/bold] (n={metrics[0].n}): {txt}")

        cfg = RunConfig(model=model, tasks=tasks, checkpoint=checkpoint, data_root=data_root, store=store,
                        batch_size=batch_size, workers=workers, limit=limit, precision=precision,
                        device=device, trust_checkpoint=trust_checkpoint, seed=seed,
                        pretrained=not random_init)
        run_id = run_zeroshot(cfg, on_task=report)
        console.print(f"run {run_id} written; see `uta-bench results --run {run_id}`")
