"""Contrastive fine-tuning recipe (paper Sec. 3, App. A.1): a flat dataclass read from YAML, checked."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from uta_bench.errors import UtaBenchError


@dataclass
class ContrastiveConfig:
    name: str = "contrastive"
    description: str = ""
    # model: target architecture (key of uta_bench.models.uta.UTA_ARCHS) and where each tower comes from
    arch: str = "uta_base_p16"
    vision_init: dict = field(default_factory=dict)    # {model: card[, checkpoint]} | {checkpoint: file or pretrain dir}
    text_init: dict = field(default_factory=dict)      # {model: card, checkpoint: file} (EVA-01-CLIP-g/14-plus text)
    trust_checkpoint: bool = False
    # data: webdataset shards of .jpg/.txt pairs (DataComp's layout)
    data: str | None = None                            # "dir/{00000..01234}.tar" or a directory of *.tar
    data_streams: int = 1                              # independent shard streams; a multiple of the world size
    image_key: str = "jpg"
    text_key: str = "txt"
    decode_threads: int = 8                            # JPEG decode + augment threads (0: inline)
    crop_scale: tuple = (0.9, 1.0)                     # RandomResizedCrop scale (open_clip's training default)
    # length: samples seen (Table 1's "# I-T pairs")
    samples: int = 0
    global_batch_size: int = 49152
    micro_batch_size: int = 64                         # per process, per accumulation step
    # optimisation (App. A.1)
    optimizer: str = "lamb"
    lr: float = 2e-4
    min_lr: float = 0.0
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.98)
    warmup_steps: int = 0
    grad_clip: float = 0.0                             # 0 = off
    temperature: float = 0.01                          # fixed: logit scale 1 / temperature, not learned
    precision: str = "bf16"
    grad_checkpointing: bool = False
    # bookkeeping
    output_dir: str = "runs/contrastive"
    ckpt_every: int = 1000                             # steps between resumable states (0 = only at the end)
    log_every: int = 10
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.samples / self.global_batch_size))

    def accum_steps(self, world_size: int) -> int:
        """Micro-batches per optimizer step on each process."""
        return self.global_batch_size // (world_size * self.micro_batch_size)

    def check_world(self, world_size: int) -> None:
        per_rank, rem = divmod(self.global_batch_size, world_size)
        if rem or per_rank % self.micro_batch_size:
            raise UtaBenchError(f"global_batch_size {self.global_batch_size} is not world size {world_size} x "
                                f"micro_batch_size {self.micro_batch_size} x an integer; change micro_batch_size")
        if self.data_streams % world_size:
            raise UtaBenchError(f"data_streams {self.data_streams} is not a multiple of the world size "
                                f"{world_size}; set data_streams to a multiple of the number of processes")


_CHOICES = {"precision": ("bf16", "fp16", "fp32"), "optimizer": ("lamb", "adamw")}


def _coerce(cfg: ContrastiveConfig, key: str, value, source: str):
    default = getattr(cfg, key)
    if isinstance(default, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer() and not isinstance(default, bool):
        value = int(value)             # 2.0e9 written in YAML for samples
    if default is not None and value is not None and not isinstance(value, type(default)):
        raise UtaBenchError(f"recipe {source}: field '{key}' must be {type(default).__name__}, "
                            f"got {type(value).__name__}")
    return value


def from_dict(data: dict, source: str = "<recipe>") -> ContrastiveConfig:
    if not isinstance(data, dict):
        raise UtaBenchError(f"recipe {source}: expected a mapping of fields")
    known = [f.name for f in fields(ContrastiveConfig)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise UtaBenchError(f"recipe {source}: unknown field '{unknown[0]}' (fields: {', '.join(known)})")
    cfg = ContrastiveConfig()
    for key, value in data.items():
        setattr(cfg, key, _coerce(cfg, key, value, source))
    _validate(cfg, source)
    return cfg


def _validate(cfg: ContrastiveConfig, source: str) -> None:
    from uta_bench.models.uta import UTA_ARCHS

    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise UtaBenchError(f"recipe {source}: field '{key}' must be one of {', '.join(choices)}")
    if cfg.arch not in UTA_ARCHS:
        raise UtaBenchError(f"recipe {source}: arch {cfg.arch!r} unknown (one of {', '.join(UTA_ARCHS)})")
    for key in ("samples", "global_batch_size", "micro_batch_size", "data_streams"):
        if getattr(cfg, key) <= 0:
            raise UtaBenchError(f"recipe {source}: field '{key}' must be > 0")
    if cfg.global_batch_size % cfg.data_streams:
        raise UtaBenchError(f"recipe {source}: global_batch_size must be a multiple of data_streams")
    if not 0 < cfg.temperature <= 1 or not 0 < cfg.layer_decay <= 1 or cfg.lr <= 0:
        raise UtaBenchError(f"recipe {source}: temperature and layer_decay must be in (0, 1], lr > 0")
    for key in ("vision_init", "text_init"):
        init = getattr(cfg, key)
        if not (init.get("model") or init.get("checkpoint")):
            raise UtaBenchError(f"recipe {source}: field '{key}' needs 'model' (a registered card) and/or "
                                "'checkpoint' (a file in the released UTA layout)")
        bad = sorted(set(init) - {"model", "checkpoint", "pretrained"})
        if bad:
            raise UtaBenchError(f"recipe {source}: field '{key}' has unknown key '{bad[0]}' "
                                "(model, checkpoint, pretrained)")


def find_recipe(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    from uta_bench.paths import repo_root

    root = repo_root()
    cand = root / "recipes" / "contrastive" / f"{path}.yaml" if root else None
    if cand is None or not cand.is_file():
        raise UtaBenchError(f"recipe {path} not found (give a YAML path or a name under recipes/contrastive/)")
    return cand


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> ContrastiveConfig:
    """A recipe file; ``base: NAME`` merges the named recipe first (the 336 px stages extend a 224 one)."""
    from uta_bench.yamlio import merge_base, read_mapping

    p = find_recipe(path)
    data = read_mapping(p, "recipe")
    data.pop("paper", None)            # the recipe's quotation of App. A.1 (checked by tests)
    data = merge_base(p, data, load_recipe)
    data.update(overrides or {})
    return from_dict(data, str(p))
