"""Fine-tune Cascade Mask R-CNN / ViTDet with mmengine's Runner (single process, or one per GPU under torchrun /
mmengine's launcher), then export the detector as a plain safetensors file ``detector.safetensors`` (+ a JSON
side-card) that ``uta-bench run det --detector-checkpoint`` loads without unpickling."""
from __future__ import annotations

import json
import os
from pathlib import Path

from uta_bench.errors import UtaBenchError


def _launcher(launcher: str | None) -> str:
    if launcher:
        return launcher
    return "pytorch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "none"


def train_detector(recipe: str, model: str, *, work_dir: str, checkpoint: str | None = None,
                   pretrained: bool = True, trust_checkpoint: bool = False, data_root: str | None = None,
                   batch_size: int | None = None, iters: int | None = None, device: str | None = None,
                   workers: int | str | None = None, launcher: str | None = None, resume: bool = False,
                   cfg_options: dict | None = None, seed: int = 0) -> Path:
    """Train; returns the exported ``detector.safetensors``. All inputs are checked before the Runner starts.

    ``device`` None / "auto": cuda when available; ``workers`` "auto" (uta_bench.resources), None: the
    recipe's; ``batch_size`` None: the recipe's global batch (training never changes it on out-of-memory)."""
    from uta_bench.det.config import build_config
    from uta_bench.det.weights import check_checkpoint
    from uta_bench.resources import resolve

    res = resolve(device, workers, batch_size, batch_from_recipe=True)     # before the config is built
    device, workers, batch_size = res.device, res.workers, res.batch_size
    launcher = _launcher(launcher)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if pretrained:
        check_checkpoint(model, checkpoint, trust_checkpoint)   # wrong file / size -> CheckpointError now
    cfg = build_config(recipe, model, work_dir=work_dir, checkpoint=checkpoint, pretrained=pretrained,
                       trust_checkpoint=trust_checkpoint, data_root=data_root, world_size=world,
                       batch_size=batch_size, iters=iters, device=device, workers=workers, train=True,
                       cfg_options=cfg_options)
    cfg.launcher = launcher
    # no in-training validation: `uta-bench run det` evaluates the exported detector (and keeps the rows)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.pop("val_interval", None)
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.resume = resume
    from mmengine.runner import Runner
    from mmengine.utils import import_modules_from_strings

    from uta_bench.det.compat import join_cpu_process_group

    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)   # registers UTAViTDet & co. in mmdet's registries
    join_cpu_process_group(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return export_detector(runner, Path(work_dir), cfg, model, checkpoint)


def export_detector(runner, work_dir: Path, cfg, model: str, backbone_checkpoint: str | None) -> Path:
    """Write the trained weights as safetensors (rank 0 only) with a side-card describing them."""
    from mmengine.dist import get_rank
    from safetensors.torch import save_file

    from uta_bench.paths import atomic_write_text

    out = work_dir / "detector.safetensors"
    if get_rank() != 0:
        return out
    net = getattr(runner.model, "module", runner.model)
    sd = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = out.with_suffix(".tmp")
    save_file(sd, str(tmp), metadata={"uta_bench_model": model})
    os.replace(tmp, out)
    _, ds = next(iter(_train_dataset(cfg)))
    card = {"model": model, "backbone_checkpoint": backbone_checkpoint, "iters": cfg.train_cfg.max_iters,
            "global_batch_size": cfg.get("global_batch_size"), "classes": list(ds["metainfo"]["classes"]),
            "recipe_config": str(work_dir / "config.py")}
    cfg.dump(str(work_dir / "config.py"))
    atomic_write_text(work_dir / "detector.json", json.dumps(card, indent=1))
    return out


def _train_dataset(cfg):
    from uta_bench.det.config import _datasets

    return _datasets(cfg, ("train",))


def parse_cfg_options(items: list[str] | None) -> dict:
    """``key.sub=value`` pairs (values parsed as Python literals when possible) -> nested-key dict for mmengine."""
    import ast

    out = {}
    for it in items or []:
        if "=" not in it:
            raise UtaBenchError(f"--cfg-option {it!r} is not KEY=VALUE")
        k, v = it.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out
