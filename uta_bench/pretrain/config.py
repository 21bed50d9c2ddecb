"""Pre-training recipe: a flat dataclass loaded from ``recipes/pretrain/*.yaml`` with field checks."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from uta_bench.errors import UtaBenchError


@dataclass
class PretrainConfig:
    name: str = "uta_pretrain"
    description: str = ""
    # models
    student_arch: str = "uta_base_p14"         # key of uta_bench.models.uta.UTA_ARCHS
    student_overrides: dict = field(default_factory=dict)   # extra timm Eva kwargs (drop_path_rate...)
    teacher: str = "eva01_g14_plus"            # any registered model name (the paper: EVA-01-CLIP-g/14-plus)
    teacher_checkpoint: str | None = None
    trust_checkpoint: bool = False
    # objective / masking (Table 6 / Table 8)
    objective: str = "uta"                     # uta | mim | fd | uta_mim
    mask_kind: str = "block_reversed"          # block | random | block_reversed
    mask_ratio: float = 0.4
    # data
    data: str | None = None                    # ImageFolder root, or webdataset shards "dir/{000..009}.tar"
    data_format: str = "imagefolder"           # imagefolder | webdataset
    dataset_size: int | None = None            # webdataset: samples per epoch (needed for epochs)
    val_data: str | None = None
    val_samples: int = 1000
    val_every: int = 0                         # steps; 0 = only at the end
    val_mask_ratio: float = 0.5                # App. A.3: random masking, ratio 0.5
    crop_scale: tuple = (0.4, 1.0)             # RandomResizedCrop scale
    workers: int = 4
    # optimisation (App. A.1)
    epochs: float = 150
    steps: int | None = None                   # overrides epochs when set
    global_batch_size: int = 4096
    lr: float = 1.5e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 1
    warmup_steps: int | None = None            # overrides warmup_epochs when set
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.98)
    grad_clip: float = 3.0
    precision: str = "bf16"                    # bf16 | fp16 | fp32 (autocast)
    grad_checkpointing: bool = False
    # bookkeeping
    output_dir: str = "runs/pretrain"
    ckpt_every: int = 1000
    log_every: int = 10
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    def total_steps(self, dataset_len: int) -> int:
        if self.steps:
            return int(self.steps)
        return max(1, int(self.epochs * dataset_len // self.global_batch_size))

    def warmup(self, dataset_len: int) -> int:
        if self.warmup_steps is not None:
            return int(self.warmup_steps)
        return int(self.warmup_epochs * dataset_len // self.global_batch_size)


_CHOICES = {"objective": ("uta", "mim", "fd", "uta_mim"), "mask_kind": ("block", "random", "block_reversed"),
            "data_format": ("imagefolder", "webdataset"), "precision": ("bf16", "fp16", "fp32")}


def from_dict(data: dict, source: str = "<recipe>") -> PretrainConfig:
    if not isinstance(data, dict):
        raise UtaBenchError(f"recipe {source}: expected a mapping of fields")
    known = {f.name: f for f in fields(PretrainConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise UtaBenchError(f"recipe {source}: unknown field '{unknown[0]}' (fields: {', '.join(known)})")
    cfg = PretrainConfig()
    for key, value in data.items():
        default = getattr(cfg, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not None and value is not None and not isinstance(value, type(default)):
            raise UtaBenchError(f"recipe {source}: field '{key}' must be {type(default).__name__}, "
                                f"got {type(value).__name__}")
        setattr(cfg, key, value)
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise UtaBenchError(f"recipe {source}: field '{key}' must be one of {', '.join(choices)}")
    if not 0 <= cfg.mask_ratio < 1:
        raise UtaBenchError(f"recipe {source}: field 'mask_ratio' must be in [0, 1)")
    return cfg


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    from uta_bench.yamlio import merge_base, read_mapping

    p = Path(path)
    if not p.is_file():
        from uta_bench.paths import repo_root

        root = repo_root()
        cand = root / "recipes" / "pretrain" / f"{path}.yaml" if root else None
        if cand is None or not cand.is_file():
            raise UtaBenchError(f"recipe {path} not found (give a YAML path or a name under recipes/pretrain/)")
        p = cand
    data = read_mapping(p, "recipe")
    data = merge_base(p, data, load_recipe)   # ablation recipes name the recipe they modify
    data.update(overrides or {})
    return from_dict(data, str(p))
