"""One training step of the paper-scale detection / segmentation recipes (random-init towers, App. A.1 input
sizes) on this machine: wall time, training FLOPs (forward + backward, counted by torch's FlopCounterMode) and
peak resident-memory growth, per image -- the inputs of the README's GPU plan (GPU-hours = FLOPs per image x
global batch x iterations / sustained GPU throughput).

    python benchmarks/det_seg_step.py [--recipes coco_b,upernet_uta_b16_ade20k] [--threads 2]
    python benchmarks/det_seg_step.py --backbone-only      # no mmcv needed: the towers alone

``--backbone-only`` counts the four paper backbones (det B/16, L/14 at 1024 px; seg B/16, L/14 at 512 px)
on the meta device (no compute) and times one real step of the B/16 seg and det backbones.

Det recipes (recipes/det: coco_b, coco_l, lvis_b, lvis_l) run on one generated 1024 px COCO-layout image, seg
recipes (recipes/seg) on two generated 512 px ADE20K-layout scenes (figures per image). Prints one line per
recipe and, as the reference ratio, each recipe's FLOPs relative to the first one.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _det_parts(recipe: str, tmp: Path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import uta_bench.det.mmdet_modules  # noqa: F401
    from uta_bench.det.config import build_config
    from uta_bench.det.sample import make_sample_coco

    root = make_sample_coco(tmp / "coco", n_train=1, n_val=1, size=1024)
    model = "uta_l14" if recipe.endswith("_l") else "uta_b16"
    cfg = build_config(recipe, model, work_dir=str(tmp / "w"), pretrained=False, data_root=str(root),
                       batch_size=1, workers=0)
    init_default_scope("mmdet")
    return MODELS.build(cfg.model), Runner.build_dataloader(cfg.train_dataloader, seed=0)


def _seg_parts(recipe: str, tmp: Path):
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS

    import uta_bench.seg.mmseg_modules  # noqa: F401
    from uta_bench.seg.ade import make_ade20k_sample
    from uta_bench.seg.config import build_config

    # two scenes: UperNet's pooling module ends in BatchNorm on 1x1 maps, which cannot train on one image
    root = make_ade20k_sample(tmp / "ADEChallengeData2016", n_train=2, n_val=1, size=512)
    cfg = build_config(recipe, data_root=str(root), work_dir=str(tmp / "w"), pretrained=False, batch_size=2,
                       workers=0)
    init_default_scope("mmseg")
    return MODELS.build(cfg.model), Runner.build_dataloader(cfg.train_dataloader, seed=0)


def step(recipe: str) -> tuple[float, float, float]:
    """(seconds, training TFLOPs, peak RSS growth in GB) per image of one forward+backward step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    tmp = Path(tempfile.mkdtemp())
    model, loader = (_seg_parts if recipe.startswith("upernet") else _det_parts)(recipe, tmp)
    model.init_weights()
    model.train()
    batch = next(iter(loader))
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    with FlopCounterMode(display=False) as fc:
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode="loss")
        total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                    for k, v in losses.items() if "loss" in k)
        total.backward()
    n = len(batch["inputs"])                         # per image (seg recipes step on two)
    return (time.perf_counter() - t0) / n, fc.get_total_flops() / 1e12 / n, (_rss_mb() - rss0) / 1024 / n


def _backbone(kind: str, model: str):
    from uta_bench.det.backbone import ViTDetBackbone
    from uta_bench.det.weights import build_det_tower
    from uta_bench.seg.backbone import EvaMultiLevel

    if kind == "det":
        return ViTDetBackbone(build_det_tower(model, 0.1), window_size=16), 1024
    return EvaMultiLevel(model, img_size=512, patch_size=16), 512


def backbone_step(kind: str, model: str, timed: bool) -> tuple[float, float, float]:
    """(CPU seconds or nan, training TFLOPs, peak RSS growth GB) of one backbone forward+backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def run(m, x):
        out = m(x)
        out = list(out.values()) if isinstance(out, dict) else list(out)
        sum(o.float().mean() for o in out).backward()

    with torch.device("meta"):
        m, size = _backbone(kind, model)
        with FlopCounterMode(display=False) as fc:
            run(m, torch.randn(1, 3, size, size))
    if not timed:
        return float("nan"), fc.get_total_flops() / 1e12, float("nan")
    m, size = _backbone(kind, model)
    x = torch.randn(1, 3, size, size)
    rss0 = _rss_mb()
    c0 = time.process_time()
    run(m, x)
    return time.process_time() - c0, fc.get_total_flops() / 1e12, (_rss_mb() - rss0) / 1024


def main_backbones() -> None:
    print(f"{'backbone':16} {'input':>6} {'train TFLOP/img':>16} {'CPU s/img':>10} {'GFLOP/CPU-s':>12} {'peak RSS +GB':>12}")
    for kind, model, timed in (("seg", "uta_b16", True), ("seg", "uta_l14", False), ("det", "uta_b16", True),
                               ("det", "uta_l14", False)):
        sec, tflop, gb = backbone_step(kind, model, timed)
        size = 1024 if kind == "det" else 512
        print(f"{kind + ' ' + model:16} {size:>6} {tflop:>16.2f} {sec:>10.1f} {1000 * tflop / sec:>12.1f} {gb:>12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="coco_b,upernet_uta_b16_ade20k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbone-only", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.backbone_only:
        return main_backbones()
    ref = None
    print(f"{'recipe':28} {'s/img (CPU)':>11} {'train TFLOP/img':>16} {'CPU TFLOP/s':>11} {'peak RSS +GB':>12} {'vs first':>8}")
    for r in args.recipes.split(","):
        sec, tflop, gb = step(r)
        ref = ref or tflop
        print(f"{r:28} {sec:>11.1f} {tflop:>16.2f} {tflop / sec:>11.3f} {gb:>12.1f} {tflop / ref:>7.2f}x")


if __name__ == "__main__":
    main()
