"""Fine-tuning settings: a dataclass, filled from a recipe (``recipes/finetune/*.yaml``) and CLI overrides.

Every field maps onto a timm component or the shared training core (see :mod:`uta_bench.finetune.train`);
nothing here trains.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError


@dataclass
class FinetuneConfig:
    model: str = "uta_b16"                  # registered model whose ``.visual`` (timm Eva) is fine-tuned
    train_dir: str = ""                     # ImageFolder (class sub-folders)
    out_dir: str = "runs/finetune"
    checkpoint: str | None = None           # weights for ``model`` (default: the card's weights)
    pretrained: bool = True                 # False: random init (smoke tests only)
    trust_checkpoint: bool = False
    # optimisation (AdamW + layer-wise lr decay, timm.optim.param_groups_layer_decay)
    epochs: int = 30
    batch_size: int = 1024                  # global batch = per-device batch x world size x accum_steps
    accum_steps: int = 1
    lr: float = 1e-4
    min_lr: float = 0.0
    warmup_epochs: float = 3.0               # linear from lr/warm-up updates (training.schedule)
    weight_decay: float = 0.05
    layer_decay: float = 0.7
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float | None = None
    # regularisation
    drop_path: float = 0.1
    smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    # data (timm.data.create_transform)
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    scale: tuple = (0.08, 1.0)
    re_prob: float = 0.0
    interpolation: str = "bicubic"
    # EMA (timm.utils.ModelEmaV3)
    ema: bool = True
    ema_decay: float = 0.9999
    # runtime
    precision: str = "fp32"                 # fp32 | bf16 (autocast)
    device: str = "auto"                    # auto: cuda when available (uta_bench.resources)
    workers: int | str = "auto"             # DataLoader workers per process; auto: from the usable CPUs
    seed: int = 0
    save_every: int = 1000                  # optimizer updates between resumable checkpoints
    stop_after: int | None = None           # stop (checkpoint kept) after this many updates in total
    recipe: str | None = None
    extra: dict = field(default_factory=dict)
    auto: tuple = ()                        # settings chosen automatically ("device", "workers")

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if isinstance(self.auto_augment, str) and self.auto_augment.lower() in ("", "none", "off"):
            self.auto_augment = None
        if not self.train_dir:
            raise UtaBenchError("no training data: pass --train-dir (an ImageFolder of class sub-folders)")
        if self.precision not in ("fp32", "bf16"):
            raise UtaBenchError(f"precision {self.precision!r} is not supported for fine-tuning; use fp32 or bf16")
        for name in ("epochs", "batch_size", "accum_steps"):
            if getattr(self, name) < 1:
                raise UtaBenchError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not 0 < self.layer_decay <= 1:
            raise UtaBenchError(f"layer_decay must be in (0, 1] (got {self.layer_decay})")
        if self.lr <= 0:
            raise UtaBenchError(f"lr must be > 0 (got {self.lr})")


FIELDS = {f.name for f in fields(FinetuneConfig)}


def recipe_dir() -> Path:
    from uta_bench.paths import repo_root

    root = repo_root()
    return (root / "recipes" / "finetune") if root else Path("recipes/finetune")


def load_recipe(name_or_path: str) -> dict:
    """A recipe by name (``recipes/finetune/<name>.yaml``) or path, as a dict of config fields."""
    from uta_bench.yamlio import read_mapping

    p = Path(name_or_path)
    if not p.suffix:
        p = recipe_dir() / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in recipe_dir().glob("*.yaml"))
        raise NotFoundError(f"fine-tuning recipe {name_or_path!r} not found; known recipes: {', '.join(known)}")
    data = read_mapping(p, "recipe")
    bad = sorted(set(data) - FIELDS)
    if bad:
        raise UtaBenchError(f"recipe {p}: unknown setting(s) {', '.join(bad)}")
    for k in ("betas", "scale"):
        if k in data:
            data[k] = tuple(data[k])
    data["recipe"] = str(p)
    return data


def make_config(recipe: str | None = None, **overrides) -> FinetuneConfig:
    """Recipe values, then non-None overrides; validated."""
    values = load_recipe(recipe) if recipe else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    bad = sorted(set(values) - FIELDS)
    if bad:
        raise UtaBenchError(f"unknown fine-tuning setting(s): {', '.join(bad)}")
    cfg = FinetuneConfig(**values)
    cfg.validate()
    return resolve_resources(cfg)


def resolve_resources(cfg: FinetuneConfig) -> FinetuneConfig:
    """Device and workers resolved (uta_bench.resources). The batch is the recipe's global batch, a
    hyperparameter of the result: training keeps it (auto = the recipe value) and never backs off."""
    from dataclasses import replace

    from uta_bench.resources import resolve

    res = resolve(cfg.device, cfg.workers, None)
    return replace(cfg, device=res.device, workers=res.workers, auto=tuple(dict.fromkeys((*cfg.auto, *res.auto))))
