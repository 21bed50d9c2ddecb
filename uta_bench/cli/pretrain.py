"""`uta-bench train pretrain` (UTA / MIM / FD / UTA+MIM) and `uta-bench plot masks|loss`."""
from __future__ import annotations

from typing import List, Optional

import typer


def _parse_sets(sets: list[str]) -> dict:
    import yaml

    from uta_bench.errors import UtaBenchError

    out = {}
    for s in sets or []:
        if "=" not in s:
            raise UtaBenchError(f"--set {s!r}: expected KEY=VALUE (e.g. --set mask_ratio=0.5)")
        k, v = s.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import plot_app, train_app

    @train_app.command("pretrain")
    def pretrain_cmd(
        recipe: str = typer.Option(..., "--recipe", "-r", help="recipes/pretrain/<name>.yaml or a path."),
        data: Optional[str] = typer.Option(None, "--data", help="ImageFolder root or webdataset shards."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Output dir (last.pt, train_log.jsonl)."),
        steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Total steps (overrides epochs)."),
        sets: List[str] = typer.Option([], "--set", help="Override a recipe field: KEY=VALUE (repeatable)."),
        resume: str = typer.Option("auto", "--resume", help="'auto' (OUT/last.pt if present), a path, or 'no'."),
        stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1,
                                                 help="Stop after this global step (resumable)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
    ):
        """Pre-train a student ViT against a frozen CLIP teacher (paper Sec. 2-3); torchrun for DDP."""
        from rich.console import Console

        from uta_bench.pretrain.config import load_recipe
        from uta_bench.pretrain.session import run_pretrain

        overrides = _parse_sets(sets)
        for key, value in (("data", data), ("output_dir", out), ("steps", steps)):
            if value is not None:
                overrides[key] = value
        cfg = load_recipe(recipe, overrides)
        console = Console()
        res, exported = run_pretrain(cfg, resume=None if resume == "no" else resume, stop_after=stop_after,
                                     store=store, on_log=lambda r: console.log(
                                         f"step {r['step']} lr {r['lr']:.2e} loss {r['train_loss']:.4f}"
                                         + (f" val {r['val_loss']:.4f}" if "val_loss" in r else "")))
        if exported is None and res.history:
            console.print(f"stopped at step {res.final_step}; resume with the same command "
                          f"({cfg.output_dir}/last.pt)")
        elif exported:
            path, with_text = exported
            console.print(f"wrote {path}" + (" (student + teacher text tower): evaluate with "
                                              f"`uta-bench run zeroshot --model <uta card of {cfg.student_arch}> "
                                              f"--checkpoint {path}`" if with_text else " (vision tower only)"))

    @plot_app.command("masks")
    def plot_masks_cmd(
        out: str = typer.Option("results/figures/fig3_masks.png", "--out", "-o"),
        grid: int = typer.Option(14, "--grid", min=2, help="Patch grid side (224/16 = 14)."),
        ratio: float = typer.Option(0.5, "--ratio", min=0.0, max=0.99),
        n: int = typer.Option(5000, "--n", min=1, help="Masks to average (the paper: 5000)."),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Fig. 3: masking probability per location, block vs reversed block."""
        from uta_bench.pretrain.plots import plot_masks

        path, probs = plot_masks(out, grid=grid, ratio=ratio, n=n, seed=seed, progress=True)
        for k, p in probs.items():
            typer.echo(f"{k:15s} max/min location probability {p.max() / p.min():.2f}")
        typer.echo(f"wrote {path}")

    @plot_app.command("loss")
    def plot_loss_cmd(
        logs: List[str] = typer.Argument(..., help="train_log.jsonl files (or their run directories) written by "
                                        "`train pretrain` (label=PATH ok)."),
        out: str = typer.Option("results/figures/fig4_loss.png", "--out", "-o"),
    ):
        """Fig. 4: training and validation loss curves from pre-training runs."""
        from pathlib import Path

        from uta_bench.pretrain.checkpointing import read_loss_log
        from uta_bench.pretrain.plots import plot_loss

        curves = {}
        for spec in logs:
            label, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
            p = Path(path)
            curves[label or (p if p.is_dir() else p.parent).name] = read_loss_log(p)
        typer.echo(f"wrote {plot_loss(curves, out)}")
