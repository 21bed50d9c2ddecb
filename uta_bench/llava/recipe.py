"""LLaVA training recipes (``recipes/llava/*.yaml``): one flat dataclass, YAML + ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError


@dataclass
class LlavaRecipe:
    stage: int = 1
    # model
    vision: str = "uta_b16"                 # registered tower name (uta-bench models)
    vision_checkpoint: str | None = None
    vision_pretrained: bool = True          # False: random init (tests / smoke runs only)
    vision_layer: int = -2                  # LLaVA mm_vision_select_layer: penultimate block
    vision_feature: str = "patch"           # patch | cls_patch
    lm: str = "lmsys/vicuna-7b-v1.3"        # any AutoModelForCausalLM spec (see uta_bench.llava.lm)
    lm_layers: int | None = None            # keep only the first N LM layers (CPU smoke runs / tests)
    projector: str = "linear"               # linear (LLaVA v1) | mlp2x_gelu
    template: str = "plain"                 # plain (stage 1) | vicuna_v1 | chat
    init_from: str | None = None            # stage 2: the stage-1 output directory (its projector)
    lm_trainable: list[str] = field(default_factory=list)   # stage 2: [] = whole LM, else name substrings
    # data
    data: str | None = None                 # LLaVA JSON
    images: str | None = None               # folder the JSON's "image" paths are relative to
    model_max_length: int = 2048
    # optimisation (App. A.1)
    lr: float = 2e-3
    batch_size: int = 128                   # global batch = micro_batch_size x accumulation x world size
    micro_batch_size: int = 16
    epochs: int = 1
    warmup_steps: int = 150
    schedule: str = "cosine"                # cosine (to 0) | constant
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    max_steps: int | None = None            # cap on optimizer steps (smoke runs); None = epochs
    # runtime
    precision: str = "bf16"                 # bf16 (autocast, fp32 master weights) | fp32
    gradient_checkpointing: bool = True
    device: str | None = None               # None / auto: cuda if available (cuda:LOCAL_RANK under torchrun) else cpu
    save_every: int = 500                   # optimizer steps between resumable checkpoints
    seed: int = 42
    workers: int | str = "auto"             # DataLoader workers per process; auto: from the usable CPUs

    def validate(self) -> "LlavaRecipe":
        if self.stage not in (1, 2):
            raise UtaBenchError(f"stage must be 1 or 2, got {self.stage}")
        if self.precision not in ("bf16", "fp32"):
            raise UtaBenchError(f"precision must be bf16 or fp32, got {self.precision!r}")
        if self.schedule not in ("cosine", "constant"):
            raise UtaBenchError(f"schedule must be cosine or constant, got {self.schedule!r}")
        if self.batch_size < 1 or self.micro_batch_size < 1 or self.batch_size % self.micro_batch_size:
            raise UtaBenchError(f"batch_size {self.batch_size} must be a multiple of micro_batch_size "
                                f"{self.micro_batch_size}")
        if not self.data:
            raise UtaBenchError("no training data: set data (LLaVA JSON) and images (their folder)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_OPTIONAL_INT = {"max_steps", "lm_layers"}


def _coerce(name: str, raw, current):
    """CLI strings -> the field's type ("2e-5" -> 2e-5, "[a, b]" -> list, "null" -> None)."""
    import yaml

    if not isinstance(raw, str):
        return tuple(raw) if isinstance(current, tuple) and isinstance(raw, list) else raw
    if raw.strip().lower() in ("null", "none", "~") and (current is None or name in _OPTIONAL_INT):
        return None
    try:
        if isinstance(current, bool):
            return bool(yaml.safe_load(raw))
        if isinstance(current, int) or name in _OPTIONAL_INT:
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, (list, tuple)):
            val = yaml.safe_load(raw)
            val = val if isinstance(val, list) else [val]
            return tuple(float(v) for v in val) if isinstance(current, tuple) else [str(v) for v in val]
    except (ValueError, TypeError):
        raise UtaBenchError(f"recipe setting {name}: cannot read {raw!r} as {type(current).__name__}") from None
    return raw


def load_recipe(path: str | Path | None = None, overrides: dict | None = None) -> LlavaRecipe:
    """Read a recipe YAML (keys = LlavaRecipe fields) and apply ``overrides`` (strings are YAML-parsed)."""
    from uta_bench.yamlio import read_mapping

    names = {f.name for f in dataclasses.fields(LlavaRecipe)}
    values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"recipe {p} not found (see recipes/llava/)")
        values.update(read_mapping(p, "recipe"))
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    unknown = sorted(set(values) - names)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(names), n=3, cutoff=0.5)
        raise UtaBenchError(f"unknown recipe setting {unknown[0]!r}"
                            + (f"; did you mean {', '.join(close)}?" if close else
                               f"; settings: {', '.join(sorted(names))}"))
    base = LlavaRecipe()
    for k, v in values.items():
        values[k] = _coerce(k, v, getattr(base, k))
    return LlavaRecipe(**values)
