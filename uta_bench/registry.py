"""Model registry: cards describing every model uta-bench can load (like timm's pretrained cfgs).

Pure data, no torch import: `uta-bench models` must stay instant.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from uta_bench.errors import suggest

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from when no ``--checkpoint`` is given."""

    hf_repo: str | None = None          # e.g. "jjjjh/UTA"
    filename: str | None = None         # path inside the repo
    sha256: str | None = None           # known digest, verified after download when set
    open_clip_pretrained: str | None = None  # open_clip pretrained tag (baselines)


@dataclass(frozen=True)
class PaperRef:
    """Which paper row a model corresponds to (see results/paper/*.csv)."""

    method: str          # "UTA", "CLIP", "EVA-02-CLIP", ...
    size: str            # "B", "L", "g"
    model: str           # Table 1 model label, e.g. "B/16@224"
    it_pairs: str        # Table 1 "# I-T Pairs", e.g. "2B"


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str                      # "uta" (timm Eva + open_clip text) or "open_clip"
    arch: str                        # uta arch name, or open_clip model name
    image_size: int
    weights: Weights = field(default_factory=Weights)
    mean: tuple = OPENAI_CLIP_MEAN
    std: tuple = OPENAI_CLIP_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"    # resize shortest side, then centre crop
    tokenizer: str = "open_clip:ViT-B-16"  # open_clip tokenizer (CLIP BPE, context 77)
    context_length: int = 77
    embed_dim: int = 1024
    paper: PaperRef | None = None
    description: str = ""
    alias_of: str | None = None
    tags: tuple = ()

    def to_dict(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, ModelCard] = {}


def register_model(card: ModelCard) -> ModelCard:
    if card.name in _REGISTRY:
        raise ValueError(f"model {card.name!r} registered twice")
    _REGISTRY[card.name] = card
    return card


def _ensure_loaded() -> None:
    if not _REGISTRY:
        import uta_bench.model_cards  # noqa: F401  (registers the built-in cards)


def list_models(include_test: bool = True) -> list[str]:
    _ensure_loaded()
    return [n for n, c in _REGISTRY.items() if include_test or "test" not in c.tags]


def get_card(name: str) -> ModelCard:
    """Card for ``name`` (aliases resolved to their target, keeping the alias name)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise suggest(name, _REGISTRY, "model")
    card = _REGISTRY[name]
    return card


def resolve_alias(name: str) -> ModelCard:
    card = get_card(name)
    return _REGISTRY[card.alias_of] if card.alias_of else card


def cards() -> dict[str, ModelCard]:
    _ensure_loaded()
    return dict(_REGISTRY)
