"""`uta-bench train seg` and `uta-bench run seg` (UperNet on ADE20K, Table 4's ADE20K mIoU column)."""
from __future__ import annotations

from typing import Optional

import typer

from uta_bench.resources import option


def _print_resources(cfg) -> None:
    """The device / workers / batch the mmengine config resolved to (rank 0 only)."""
    import os

    from uta_bench.resources import describe

    if os.environ.get("RANK", "0") == "0":
        r = cfg.uta_resources
        typer.echo(describe(r["device"], r["workers"], r["batch_size"], r["auto"]))


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import train_app

    @train_app.command("seg")
    def train_seg_cmd(
        recipe: str = typer.Option("upernet_uta_b16_ade20k", "--recipe", "-r",
                                   help="recipes/seg/<name>.py or a path to an mmengine config."),
        data_root: Optional[str] = typer.Option(None, "--data-root", help=".../ADEChallengeData2016"),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Override the recipe's backbone model."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Backbone weights (.safetensors/.pt)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
        random_init: bool = typer.Option(False, "--random-init", help="Random backbone (smoke tests)."),
        work_dir: Optional[str] = typer.Option(None, "--work-dir", "-o"),
        iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Override max iterations."),
        batch_size: str = typer.Option("auto", "--batch-size", callback=option(1),
                                    help="Per-GPU batch size; auto: the recipe's."),
        workers: str = typer.Option("auto", "--workers", callback=option(0),
                                    help="DataLoader workers per process, or auto."),
        launcher: str = typer.Option("none", "--launcher", help="none | pytorch (under torchrun) | slurm"),
        seed: Optional[int] = typer.Option(None, "--seed"),
    ):
        """Fine-tune UperNet + a registered vision tower with mmengine's Runner."""
        from uta_bench.seg.config import build_config
        from uta_bench.seg.run import train_seg

        cfg = build_config(recipe, data_root=data_root, work_dir=work_dir, model=model, checkpoint=checkpoint,
                           pretrained=False if random_init else None, trust_checkpoint=trust_checkpoint,
                           max_iters=iters, batch_size=batch_size, workers=workers, launcher=launcher, seed=seed)
        _print_resources(cfg)
        res = train_seg(cfg)
        if res["exported"]:
            typer.echo(f"wrote {res['exported']}; evaluate with `uta-bench run seg --recipe {recipe} "
                       f"--seg-checkpoint {res['exported']}`")

    @run_app.command("seg")
    def run_seg_cmd(
        seg_checkpoint: str = typer.Option(..., "--seg-checkpoint",
                                           help="segmentor.safetensors (or iter_*.pth) from train seg."),
        recipe: str = typer.Option("upernet_uta_b16_ade20k", "--recipe", "-r"),
        data_root: Optional[str] = typer.Option(None, "--data-root", help=".../ADEChallengeData2016"),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Override the recipe's backbone model."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                              help="Allow pickled mmengine .pth files (they run code on load)."),
        work_dir: Optional[str] = typer.Option(None, "--work-dir", "-o"),
        workers: str = typer.Option("auto", "--workers", callback=option(0),
                                    help="DataLoader workers per process, or auto."),
        launcher: str = typer.Option("none", "--launcher",
                                     help="none | pytorch (under torchrun: each process scores a shard) | slurm"),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Single-scale mIoU on ADE20K validation (ours == mmseg IoUMetric); rows go to the store."""
        from uta_bench.seg.config import build_config
        from uta_bench.seg.run import eval_seg

        cfg = build_config(recipe, data_root=data_root, work_dir=work_dir, model=model, workers=workers,
                           pretrained=False, launcher=launcher)
        _print_resources(cfg)
        run_id, metrics, mm = eval_seg(cfg, seg_checkpoint, store=store, trust_checkpoint=trust_checkpoint,
                                       seed=seed)
        if run_id is None:   # not rank 0: rank 0 reports and writes the one run
            return
        txt = "  ".join(f"{m.metric}={100 * m.value:.2f}%" for m in metrics)
        ref = float(mm.get("mIoU", float("nan")))
        typer.echo(f"ade20k (n={metrics[0].n}): {txt}  [mmseg IoUMetric mIoU={ref:.2f}%]")
        typer.echo(f"run {run_id} written; see `uta-bench results --run {run_id}`")
