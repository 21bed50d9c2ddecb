"""`uta-bench train contrastive`: the paper's second stage (contrastive fine-tuning); torchrun for DDP."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import train_app

    @train_app.command("contrastive")
    def contrastive_cmd(
        recipe: str = typer.Option(..., "--recipe", "-r", help="recipes/contrastive/<name>.yaml or a path."),
        data: Optional[str] = typer.Option(None, "--data", help="webdataset shards of .jpg/.txt pairs "
                                                                "(dir, 'dir/{00000..00099}.tar', pipe:...)."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Output dir (last.pt, train_log.jsonl, "
                                                                    "model.safetensors)."),
        init: Optional[str] = typer.Option(None, "--init", help="Image tower: a `train pretrain` output dir "
                                                                "or a UTA-layout file (overrides vision_init)."),
        samples: Optional[int] = typer.Option(None, "--samples", min=1, help="Samples to see (overrides)."),
        sets: List[str] = typer.Option([], "--set", help="Override a recipe field: KEY=VALUE (repeatable)."),
        resume: str = typer.Option("auto", "--resume", help="'auto' (OUT/last.pt if present), a path, or 'no'."),
        stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1,
                                                 help="Stop after this global step (resumable)."),
    ):
        """Contrastive fine-tuning of a UTA image tower + CLIP text tower (paper Sec. 3, App. A.1)."""
        from rich.console import Console

        from uta_bench.cli.pretrain import _parse_sets
        from uta_bench.contrastive.config import load_recipe
        from uta_bench.contrastive.train import train_contrastive

        overrides = _parse_sets(sets)
        for key, value in (("data", data), ("output_dir", out), ("samples", samples)):
            if value is not None:
                overrides[key] = value
        if init is not None:
            overrides["vision_init"] = {"checkpoint": init}
        cfg = load_recipe(recipe, overrides)
        console = Console()
        res = train_contrastive(cfg, resume=resume, stop_after=stop_after, progress=True, on_log=lambda r: console.log(
            f"step {r['step']} lr {r['lr']:.2e} loss {r['loss']:.4f}"))
        import os

        if os.environ.get("RANK", "0") != "0":
            return
        if res.exported:
            console.print(f"wrote {res.exported}: evaluate with `uta-bench run zeroshot --model <uta card of "
                          f"{cfg.arch}> --checkpoint {res.exported}`")
        else:
            console.print(f"stopped at step {res.final_step} of {cfg.total_steps}; resume with the same command "
                          f"({cfg.output_dir}/last.pt)")
