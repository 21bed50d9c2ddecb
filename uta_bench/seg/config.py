"""mmengine configs for UperNet segmentation: a recipe from ``recipes/seg/`` plus command-line overrides.

mmseg / mmcv are optional (the ``seg`` extra + mmcv 2.1 with compiled ops); :func:`require_mmseg`
turns their absence into one clear error before anything heavy happens.
"""
from __future__ import annotations

from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError

INSTALL_HINT = ("segmentation needs the 'seg' extra: pip install -e '.[seg]' and mmcv 2.1 with compiled ops "
                "(scripts/build_mmcv.sh)")


def require_mmseg() -> None:
    """Import mmseg + mmcv ops and our registrations, or raise one clear UtaBenchError."""
    try:
        import mmcv.ops  # noqa: F401  (UperNet itself runs without ops, but mmseg's import chain needs mmcv)
        import mmseg  # noqa: F401

        import uta_bench.seg.mmseg_modules  # noqa: F401
    except Exception as e:  # noqa: BLE001 - ImportError, or mmcv's version assertion
        raise UtaBenchError(f"{INSTALL_HINT} ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    # `_base_ = 'mmseg::...'` goes through pkg_resources in mmengine 0.10, gone from setuptools >= 81:
    # the det area's importlib.metadata shim (mmengine-only, no mmdet import) fixes the lookup.
    from uta_bench.det.compat import patch_mmengine_package_utils

    patch_mmengine_package_utils()


def recipe_dir() -> Path:
    from uta_bench.paths import repo_root

    root = repo_root()
    return (root / "recipes" / "seg") if root else Path("recipes/seg")


def recipe_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix != ".py":
        p = recipe_dir() / f"{name_or_path}.py"
    if not p.is_file():
        known = sorted(x.stem for x in recipe_dir().glob("*.py"))
        raise NotFoundError(f"segmentation recipe {name_or_path!r} not found; known recipes: {', '.join(known)}")
    return p


def _set_data_root(cfg, data_root: str) -> None:
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(key) is not None:
            cfg[key]["dataset"]["data_root"] = str(data_root)


def build_config(recipe: str, *, data_root: str | None = None, work_dir: str | None = None,
                 model: str | None = None, checkpoint: str | None = None, pretrained: bool | None = None,
                 trust_checkpoint: bool = False, max_iters: int | None = None,
                 batch_size: int | str | None = None, workers: int | str | None = None, launcher: str = "none",
                 seed: int | None = None):
    """The recipe's mmengine ``Config`` with overrides applied (nothing is built yet).

    ``workers`` "auto" fits the machine (uta_bench.resources), None keeps the recipe's; ``batch_size``
    "auto" / None is the recipe's per-GPU batch (a training hyperparameter: no out-of-memory backoff).
    mmengine's Runner puts the model on CUDA when available, which is what device auto picks."""
    require_mmseg()
    from mmengine.config import Config

    from uta_bench.resources import resolve

    res = resolve("auto", workers, batch_size, batch_from_recipe=True)
    batch_size, workers = res.batch_size, res.workers

    path = recipe_path(recipe)
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - syntax errors, missing _base_ ...
        raise UtaBenchError(f"recipe {path} cannot be read: {str(e).splitlines()[0][:200]}") from None
    bb = cfg.model.backbone
    if bb.get("type") != "UTAEvaSeg":
        raise UtaBenchError(f"recipe {path}: model.backbone.type must be 'UTAEvaSeg' (got {bb.get('type')!r})")
    if model:
        from uta_bench.registry import get_card

        get_card(model)              # unknown names fail here with suggestions
        bb.model = model
    if checkpoint:
        bb.checkpoint = str(checkpoint)
    if pretrained is not None:
        bb.pretrained = pretrained
    bb.trust_checkpoint = bool(trust_checkpoint)
    if data_root:
        _set_data_root(cfg, data_root)
    if max_iters:
        old = cfg.train_cfg.max_iters
        cfg.train_cfg.max_iters = max_iters
        val = cfg.train_cfg.get("val_interval", old)
        cfg.train_cfg.val_interval = max_iters if val >= old else min(val, max_iters)
        for s in cfg.param_scheduler:       # the schedule that ran to the recipe's end now ends at --iters
            if s.get("end", 0) >= old or s.get("end", 0) > max_iters:
                s.end = max_iters
            if s.get("begin", 0) >= max_iters:
                raise UtaBenchError(f"--iters {max_iters} ends before the recipe's warm-up ({s.begin} iters)")
    if batch_size:
        cfg.train_dataloader.batch_size = batch_size
    if workers is not None:
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[key].num_workers = workers
            cfg[key].persistent_workers = workers > 0
    cfg.uta_resources = {**res.record(), "batch_size": cfg.train_dataloader.batch_size,
                         "workers": cfg.test_dataloader.num_workers}
    cfg.work_dir = str(work_dir or Path("runs") / "seg" / path.stem)
    cfg.launcher = launcher
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    cfg.recipe_path = str(path)
    return cfg


def data_root_of(cfg, split: str = "test_dataloader") -> Path:
    return Path(cfg[split]["dataset"]["data_root"])
