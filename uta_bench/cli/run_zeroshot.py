"""`uta-bench run zeroshot` (also under torchrun: `torchrun --nproc_per_node N -m uta_bench run zeroshot ...`)."""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from uta_bench.resources import option


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @run_app.command("zeroshot")
    def zeroshot(
        model: str = typer.Option(..., "--model", "-m", help="Registered model name (see `uta-bench models`), open_clip:ARCH/TAG, "
                                                 "open_clip:ARCH (with --random-init) or hf-hub:ORG/NAME."),
        tasks: List[str] = typer.Option(["zeroshot"], "--tasks", "-t",
                                        help="Task names, suites (zeroshot), card .yaml files or ImageFolder paths."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights file (.safetensors/.pt)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                              help="Allow pickled checkpoints that execute code when loaded."),
        data_root: Optional[str] = typer.Option(None, "--data-root", envvar="UTA_BENCH_DATA",
                                                help="Folder holding the datasets (see `uta-bench data check`)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        batch_size: str = typer.Option("auto", "--batch-size", callback=option(1),
                                       help="Images per batch, or auto: 256 on CUDA (64 on CPU), halved on "
                                            "CUDA out-of-memory."),
        workers: str = typer.Option("auto", "--workers", callback=option(0),
                                    help="DataLoader worker processes, or auto (from the CPUs this process "
                                         "may use)."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images per task."),
        precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16"),
        device: str = typer.Option("auto", "--device", help="cpu | cuda | cuda:N | auto (cuda when available)."),
        seed: int = typer.Option(0, "--seed"),
        on_bad_image: str = typer.Option("fail", "--on-bad-image",
                                         help="fail (stop, naming the file) | skip (drop it, record it)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Recompute features (cache not read/written)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
        random_init: bool = typer.Option(False, "--random-init",
                                         help="Skip weights (smoke tests of the pipeline; numbers are chance)."),
        output_path: Optional[str] = typer.Option(None, "--output-path", "-o",
                                                  help="Also write lm-eval style results_<date>.json under "
                                                       "DIR/<model>/ (clip_benchmark metric names)."),
        log_samples: bool = typer.Option(False, "--log-samples",
                                         help="With --output-path: one samples_<task>_<date>.jsonl per task."),
    ):
        """Zero-shot classification / retrieval on task cards; every number goes to the results store."""
        from rich.console import Console

        from uta_bench.distributed import current
        from uta_bench.zeroshot.run import RunConfig, run_zeroshot

        from uta_bench.errors import UtaBenchError
        from uta_bench.resources import describe
        from uta_bench.validate import string_list

        console = Console()
        tasks = string_list("--tasks", tasks)
        if not tasks:
            raise UtaBenchError("--tasks names no task; give task names, suites (zeroshot), card .yaml files or "
                                "ImageFolder paths, separated by commas")
        if checkpoint is not None and random_init:
            raise UtaBenchError("--checkpoint and --random-init exclude each other: evaluate the weights file, or "
                                "smoke-test the pipeline with --random-init alone")

        def report(card, metrics):
            txt = "  ".join(f"{m.metric}={100 * m.value:.2f}% [{100 * m.ci_low:.1f}, {100 * m.ci_high:.1f}]"
                            for m in metrics)
            console.print(f"[bold]{card.task}[/bold] (n={metrics[0].n}): {txt}")

        cfg = RunConfig(model=model, tasks=tasks, checkpoint=checkpoint, data_root=data_root, store=store,
                        batch_size=batch_size, workers=workers, limit=limit, precision=precision,
                        device=device, trust_checkpoint=trust_checkpoint, seed=seed, progress=not no_progress,
                        pretrained=not random_init, on_bad_image=on_bad_image, use_cache=not no_cache,
                        output_path=output_path, log_samples=log_samples)

        def announce(resolved):         # after every input check: a bad input is the only line printed
            if os.environ.get("RANK", "0") == "0":
                typer.echo(describe(resolved.device, resolved.workers, resolved.batch_size, resolved.auto))

        run_id = run_zeroshot(cfg, on_task=report, on_start=announce)
        if current().main:
            console.print(f"run {run_id} written; see `uta-bench results --run {run_id}`")
            if output_path:
                console.print(f"results JSON written under {output_path}", highlight=False)
