"""`uta-bench train finetune` and `uta-bench run finetune-eval` (Table 4, ImageNet FT column)."""
from __future__ import annotations

import os
from typing import Optional

import typer

from uta_bench.resources import option
from uta_bench.validate import finite


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import train_app

    @train_app.command("finetune")
    def finetune(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Registered UTA-family model."),
        recipe: Optional[str] = typer.Option(None, "--recipe", "-r",
                                             help="recipes/finetune/<name>.yaml or a path (uta_b16, uta_l14, smoke)."),
        train_dir: Optional[str] = typer.Option(None, "--train-dir", help="ImageFolder of training images."),
        eval_dir: Optional[str] = typer.Option(None, "--eval-dir",
                                               help="Evaluate the result on this ImageFolder (writes store rows)."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory (checkpoints, log)."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Initial weights (.safetensors/.pt)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
        random_init: bool = typer.Option(False, "--random-init", help="Start from random weights (smoke tests)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", min=1),
        batch_size: Optional[str] = typer.Option(None, "--batch-size", callback=option(1),
                                                 help="Global batch size; auto or unset: the recipe value."),
        accum_steps: Optional[int] = typer.Option(None, "--accum-steps", min=1),
        lr: Optional[float] = typer.Option(None, "--lr", min=0.0, callback=finite),
        layer_decay: Optional[float] = typer.Option(None, "--layer-decay", min=0.0, callback=finite),
        warmup_epochs: Optional[float] = typer.Option(None, "--warmup-epochs", min=0.0, callback=finite),
        drop_path: Optional[float] = typer.Option(None, "--drop-path", min=0.0, callback=finite),
        smoothing: Optional[float] = typer.Option(None, "--smoothing", min=0.0, callback=finite),
        mixup: Optional[float] = typer.Option(None, "--mixup", min=0.0, callback=finite),
        cutmix: Optional[float] = typer.Option(None, "--cutmix", min=0.0, callback=finite),
        auto_augment: Optional[str] = typer.Option(None, "--auto-augment", help="timm policy, or 'none'."),
        ema: Optional[bool] = typer.Option(None, "--ema/--no-ema"),
        precision: Optional[str] = typer.Option(None, "--precision", help="fp32 | bf16"),
        device: Optional[str] = typer.Option(None, "--device",
                                             help="cpu | cuda | auto (default: the recipe value, else auto)."),
        workers: Optional[str] = typer.Option(None, "--workers", callback=option(0),
                                              help="DataLoader workers per process, or auto (default: the "
                                                   "recipe value, else auto)."),
        seed: Optional[int] = typer.Option(None, "--seed"),
        save_every: Optional[int] = typer.Option(None, "--save-every", min=1),
        stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1,
                                                 help="Stop after N updates in total (resumable)."),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue <out>/last.pt if present."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
    ):
        """Fully fine-tune a vision tower with a class head (timm recipe components); torchrun for DDP."""
        from rich.console import Console

        from uta_bench.finetune.config import make_config
        from uta_bench.finetune.train import train
        from uta_bench.resources import AUTO, count_option, describe

        batch_size = count_option("--batch-size", batch_size, 1) if batch_size is not None else None
        cfg = make_config(recipe, model=model, train_dir=train_dir, out_dir=out, checkpoint=checkpoint,
                          trust_checkpoint=trust_checkpoint or None, pretrained=False if random_init else None,
                          epochs=epochs, batch_size=None if batch_size == AUTO else batch_size,
                          accum_steps=accum_steps, lr=lr,
                          layer_decay=layer_decay, warmup_epochs=warmup_epochs, drop_path=drop_path,
                          smoothing=smoothing, mixup=mixup, cutmix=cutmix, auto_augment=auto_augment, ema=ema,
                          precision=precision, device=device, workers=workers, seed=seed,
                          save_every=save_every, stop_after=stop_after)
        console = Console()
        if os.environ.get("RANK", "0") == "0":
            typer.echo(describe(cfg.device, cfg.workers, cfg.batch_size, cfg.auto))
        res = train(cfg, progress=True, resume=resume)
        if res["rank"] != 0:
            return
        losses = res["losses"]
        if losses:
            k = max(1, len(losses) // 10)
            console.print(f"updates {res['step']}/{res['total_steps']}: loss {sum(losses[:k]) / k:.4f} (first "
                          f"{k}) -> {sum(losses[-k:]) / k:.4f} (last {k})")
        if not res["exported"]:
            console.print(f"stopped at update {res['step']}; resume with the same command ({res['out_dir']}/last.pt)")
            return
        for p in res["exported"]:
            console.print(f"wrote {p} (+ class head); load with load_model({cfg.model!r}, checkpoint={p!r})")
        if eval_dir:
            from uta_bench.finetune.evaluate import run_finetune_eval

            run_id, metrics = run_finetune_eval(cfg.model, res["exported"][-1], eval_dir, store=store,
                                                device=cfg.device, precision=cfg.precision, seed=cfg.seed)
            console.print("  ".join(f"{m.metric}={100 * m.value:.2f}%" for m in metrics) + f"  (run {run_id})")

    @run_app.command("finetune-eval")
    def finetune_eval(
        model: str = typer.Option(..., "--model", "-m", help="Registered model the checkpoint was tuned from."),
        checkpoint: str = typer.Option(..., "--checkpoint", help="finetuned*.safetensors written by train finetune."),
        data: str = typer.Option(..., "--data", help="ImageFolder with the training class folders (ImageNet val)."),
        task: str = typer.Option("imagenet1k_ft", "--task",
                                 help="Store task name; imagenet1k_ft rows map to Table 4's FT column."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        batch_size: str = typer.Option("auto", "--batch-size", callback=option(1),
                                       help="Images per batch, or auto (256 on CUDA, 64 on CPU; halved on CUDA "
                                            "out-of-memory)."),
        workers: str = typer.Option("auto", "--workers", callback=option(0),
                                    help="DataLoader workers, or auto."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images."),
        precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16"),
        device: str = typer.Option("auto", "--device", help="cpu | cuda | cuda:N | auto (cuda when available)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Top-1/top-5 of a fine-tuned classifier through load_model; rows go to the results store."""
        from rich.console import Console

        from uta_bench.finetune.evaluate import run_finetune_eval
        from uta_bench.resources import resolve

        res = resolve(device, workers, batch_size)
        typer.echo(res.describe())
        run_id, metrics = run_finetune_eval(model, checkpoint, data, task=task, store=store, limit=limit,
                                            precision=precision, resources=res,
                                            trust_checkpoint=trust_checkpoint, seed=seed)
        txt = "  ".join(f"{m.metric}={100 * m.value:.2f}% [{100 * m.ci_low:.1f}, {100 * m.ci_high:.1f}]"
                        for m in metrics)
        Console().print(f"[bold]{task}[/bold] (n={metrics[0].n}): {txt}")
        Console().print(f"run {run_id} written; see `uta-bench results --run {run_id}`")
