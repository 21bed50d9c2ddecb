"""`uta-bench train det`, `uta-bench run det`, `uta-bench data det-sample` (Table 5: Cascade Mask R-CNN / ViTDet).

mmdet/mmcv/mmengine are imported only inside the commands (the `det` extra; see scripts/build_mmcv.sh)."""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from uta_bench.resources import option

MISSING = ("detection needs the `det` extra: run scripts/build_mmcv.sh (builds mmcv 2.1.0 with ops for this "
           "torch and installs mmengine, mmdet 3.3, lvis)")


def _require_det() -> None:
    from uta_bench.errors import UtaBenchError

    try:
        import mmdet  # noqa: F401
        import mmengine  # noqa: F401
        from mmcv.ops import nms  # noqa: F401
    except Exception as e:  # noqa: BLE001 - ImportError, or an mmcv without compiled ops
        raise UtaBenchError(f"{MISSING} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import data_app, train_app

    @train_app.command("det")
    def train_det(
        model: str = typer.Option(..., "--model", "-m", help="Registered UTA model whose tower is the backbone."),
        recipe: str = typer.Option("coco", "--recipe", help="coco | lvis (size from the model), coco_l, "
                                   "coco_smoke, lvis_smoke, or a path to an mmengine config."),
        work_dir: str = typer.Option("runs/det", "--work-dir"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Backbone weights (official layout)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
        random_init: bool = typer.Option(False, "--random-init", help="No backbone weights (smoke runs)."),
        data_root: Optional[str] = typer.Option(None, "--data-root", help="COCO / LVIS v1 root (annotations/, "
                                                "train2017/, val2017/)."),
        batch_size: str = typer.Option("auto", "--batch-size", callback=option(1),
                                    help="Global batch; auto: the recipe's."),
        iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Override the recipe's iterations."),
        workers: str = typer.Option("auto", "--workers", callback=option(0),
                                    help="DataLoader workers per process, or auto."),
        launcher: Optional[str] = typer.Option(None, "--launcher", help="none | pytorch | slurm | mpi "
                                               "(default: pytorch under torchrun)."),
        resume: bool = typer.Option(False, "--resume", help="Resume from the work dir's last checkpoint."),
        cfg_option: Optional[List[str]] = typer.Option(None, "--cfg-option", help="KEY=VALUE config override."),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Fine-tune Cascade Mask R-CNN with a ViTDet backbone from a UTA tower (mmengine Runner).

        Multi-GPU: torchrun --nproc_per_node 8 $(which uta-bench) train det --model uta_l14 --recipe coco
        """
        _require_det()
        from uta_bench.det.train import parse_cfg_options, train_detector
        from uta_bench.resources import resolve

        res = resolve("auto", workers, batch_size, batch_from_recipe=True)
        if os.environ.get("RANK", "0") == "0":
            typer.echo(res.describe())          # train_detector resolves the same values again
        out = train_detector(recipe, model, work_dir=work_dir, checkpoint=checkpoint, pretrained=not random_init,
                             trust_checkpoint=trust_checkpoint, data_root=data_root, batch_size=batch_size,
                             iters=iters, workers=workers, launcher=launcher, resume=resume,
                             cfg_options=parse_cfg_options(cfg_option), seed=seed)
        typer.echo(f"detector written to {out}; evaluate with `uta-bench run det --model {model} "
                   f"--recipe {recipe} --detector-checkpoint {out}`")

    @run_app.command("det")
    def run_det(
        model: str = typer.Option(..., "--model", "-m"),
        detector_checkpoint: str = typer.Option(..., "--detector-checkpoint",
                                                help="detector.safetensors from `uta-bench train det`."),
        recipe: str = typer.Option("coco", "--recipe"),
        data_root: Optional[str] = typer.Option(None, "--data-root"),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                              help="Allow pickled detector checkpoints (mmengine .pth)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        device: str = typer.Option("auto", "--device", help="cpu | cuda | cuda:N | auto (cuda when available)."),
        workers: str = typer.Option("auto", "--workers", callback=option(0),
                                    help="DataLoader workers, or auto."),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Box / mask AP (COCO: pycocotools; LVIS: lvis API with APr/APc/APf) -> Table 5 rows in the store."""
        _require_det()
        from rich.console import Console

        from uta_bench.det.evaluate import evaluate_detector
        from uta_bench.resources import resolve

        typer.echo(resolve(device, workers, None).describe())   # evaluate_detector resolves them
        r = evaluate_detector(recipe, model, detector_checkpoint, data_root=data_root, device=device,
                              workers=workers, trust_checkpoint=trust_checkpoint, store=store, seed=seed)
        c = Console()
        for iou in ("bbox", "segm"):
            m = r.metrics[iou]
            extra = "  ".join(f"{k}={100 * m[k]:.1f}" for k in ("apr", "apc", "apf") if k in m and m[k] >= 0)
            c.print(f"[bold]{r.task} {iou}[/bold] (n={r.n_images}): AP={100 * m['ap']:.2f}  "
                    f"AP50={100 * m['ap50']:.2f}  AP75={100 * m['ap75']:.2f}  {extra}")
        c.print(f"run {r.run_id} written; detections in {r.detections}")

    @data_app.command("det-sample")
    def det_sample(
        root: str = typer.Argument(..., help="Output folder (COCO + LVIS v1 layout)."),
        n_train: int = typer.Option(16, "--train", min=1),
        n_val: int = typer.Option(8, "--val", min=1),
        size: int = typer.Option(256, "--size", min=64),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Write a small real-format detection set (scikit-image photos + Tux Paint stamps, exact masks)."""
        from uta_bench.det.sample import make_sample_coco

        out = make_sample_coco(root, n_train=n_train, n_val=n_val, size=size, seed=seed)
        typer.echo(f"wrote {out} (annotations/instances_*2017.json, annotations/lvis_v1_*.json)")
