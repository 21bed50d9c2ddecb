"""Recipe -> mmengine Config for one model / dataset / machine, with every input checked up front
(annotation files, image folders, checkpoint fit) so mistakes fail in seconds, before a Runner exists."""
from __future__ import annotations

import json
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError, suggest
from uta_bench.paths import repo_root

RECIPES = (repo_root() or Path(".")) / "recipes" / "det"   # checkout, or the copy in the wheel
SIZE_SUFFIX = {"B": "b", "L": "l", "g": "l"}   # no giant det setting in the paper: use the large one


def recipe_names() -> list[str]:
    return sorted({p.stem.rsplit("_", 1)[0] for p in RECIPES.glob("*.py") if not p.stem.startswith("_")})


def resolve_recipe(recipe: str, model: str) -> Path:
    """``coco`` / ``lvis`` (+ the model's size from its paper row: B -> *_b.py, L/g -> *_l.py), a recipe file
    name (``coco_l``, ``coco_smoke``) or a path to an mmengine config."""
    from uta_bench.registry import get_card

    p = Path(recipe)
    if p.suffix == ".py":
        if not p.is_file():
            raise NotFoundError(f"recipe file {p} does not exist")
        return p.resolve()
    if (RECIPES / f"{recipe}.py").is_file():
        return RECIPES / f"{recipe}.py"
    card = get_card(model)
    size = card.paper.size if card.paper else "B"
    cand = RECIPES / f"{recipe}_{SIZE_SUFFIX.get(size, 'b')}.py"
    if cand.is_file():
        return cand
    raise suggest(recipe, recipe_names() + [p.stem for p in RECIPES.glob("*.py") if not p.stem.startswith("_")],
                  "det recipe")


def _datasets(cfg, which=("train", "val", "test")):
    """The innermost dataset dicts of the dataloaders (through ClassBalancedDataset / RepeatDataset)."""
    for split in which:
        dl = cfg.get(f"{split}_dataloader")
        if not dl:
            continue
        ds = dl["dataset"]
        while "dataset" in ds:
            ds = ds["dataset"]
        yield split, ds


def _ann_path(ds) -> Path:
    return Path(ds.get("data_root") or "") / ds["ann_file"]


def _categories(ann: Path) -> list[dict]:
    try:
        with open(ann) as f:
            cats = json.load(f).get("categories")
    except (OSError, json.JSONDecodeError) as e:
        raise UtaBenchError(f"annotation file {ann} cannot be read as JSON ({e}); is it a COCO/LVIS file?") from None
    if not cats:
        raise UtaBenchError(f"annotation file {ann} has no 'categories'; expected COCO or LVIS v1 format")
    return sorted(cats, key=lambda c: c["id"])


def build_config(recipe: str, model: str, *, work_dir: str, checkpoint: str | None = None,
                 pretrained: bool = True, trust_checkpoint: bool = False, data_root: str | None = None,
                 world_size: int = 1, batch_size: int | None = None, iters: int | None = None,
                 device: str = "cpu", workers: int | None = None, train: bool = True, cfg_options: dict | None = None):
    """Load ``recipe`` for ``model`` and fill in the data / machine specifics. Raises UtaBenchError on bad input."""
    from mmengine.config import Config

    from uta_bench.det.compat import patch_mmengine_package_utils

    patch_mmengine_package_utils()
    path = resolve_recipe(recipe, model)
    try:
        cfg = Config.fromfile(str(path), import_custom_modules=False)
    except Exception as e:  # noqa: BLE001 - mmengine raises many types on bad configs
        raise UtaBenchError(f"recipe {path} cannot be loaded: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    bb = cfg.model.backbone
    bb.model, bb.checkpoint, bb.pretrained, bb.trust_checkpoint = model, checkpoint, pretrained, trust_checkpoint
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        root = str(Path(data_root).expanduser()).rstrip("/") + "/"
        for _, ds in _datasets(cfg):
            ds["data_root"] = root
    for split, ds in _datasets(cfg, ("val", "test")):  # mmdet's evaluators read the same annotation file
        ev = cfg.get(f"{split}_evaluator")
        if ev and "ann_file" in ev:
            ev["ann_file"] = str(_ann_path(ds))
    splits = ("train", "test") if train else ("test",)
    names = None
    for split, ds in _datasets(cfg, splits):
        ann = _ann_path(ds)
        if not ann.is_file():
            raise NotFoundError(f"{split} annotation file {ann} (recipe {path.name}) does not exist; pass --data-root "
                                f"with a COCO/LVIS layout (annotations/*.json + image folders)")
        img_dir = Path(ds.get("data_root") or "") / ds.get("data_prefix", {}).get("img", "")
        if not img_dir.is_dir():
            raise NotFoundError(f"{split} image folder {img_dir} (recipe {path.name}) does not exist")
        cats = _categories(ann)
        if names is None:
            names = tuple(c["name"] for c in cats)
        ds["metainfo"] = dict(classes=tuple(c["name"] for c in cats))
    if names is not None:
        _set_num_classes(cfg, len(names))
        tr = next(_datasets(cfg, ("train",)))[1] if train else None
        for h in cfg.model.roi_head.bbox_head:
            if h.get("loss_cls", {}).get("type") == "UTAFederatedLoss":
                if train:   # class sampling weights from the training annotations
                    h.loss_cls.ann_file, h.loss_cls.image_counts = str(_ann_path(tr)), None
                else:       # inference never samples classes: no training annotations needed
                    h.loss_cls.ann_file, h.loss_cls.image_counts = None, [1] * len(names)
    _machine(cfg, world_size, batch_size, iters, device, workers)
    cfg.work_dir = str(work_dir)
    return cfg


def _set_num_classes(cfg, n: int) -> None:
    rh = cfg.model.roi_head
    for h in rh.bbox_head:
        h.num_classes = n
        if h.get("loss_cls", {}).get("num_classes") is not None:
            h.loss_cls.num_classes = n
    rh.mask_head.num_classes = n


def _machine(cfg, world_size, batch_size, iters, device, workers) -> None:
    global_bs = int(batch_size or cfg.get("global_batch_size", 16))
    if global_bs % world_size:
        raise UtaBenchError(f"global batch size {global_bs} is not divisible by {world_size} processes; "
                            f"pass --batch-size a multiple of the GPU count")
    cfg.train_dataloader.batch_size = global_bs // world_size
    cfg.global_batch_size = global_bs
    if iters:
        old = cfg.train_cfg.max_iters
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
        for s in cfg.param_scheduler:
            if s.type == "MultiStepLR":
                s.end = iters
                s.milestones = [max(1, int(m * iters / old)) for m in s.milestones]
            elif s.type == "LinearLR":
                s.end = min(s.end, max(1, iters // 4))
        ck = cfg.default_hooks.checkpoint
        ck.interval = min(ck.interval, iters)
    if workers is not None:
        for split in ("train", "val", "test"):
            dl = cfg.get(f"{split}_dataloader")
            if dl:
                dl.num_workers = workers
                dl.persistent_workers = workers > 0
    if not str(device).startswith("cuda"):
        cfg.optim_wrapper.type = "OptimWrapper"  # AMP (fp16 loss scaling) needs CUDA
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
