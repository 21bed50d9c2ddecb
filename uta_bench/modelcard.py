"""The model-card data types (pure data, no registry, no torch): :class:`ModelCard`, its
:class:`Weights` and :class:`PaperRef`. Card lists (:mod:`uta_bench.model_cards`,
:mod:`uta_bench.demo.cards`) import these; :mod:`uta_bench.registry` registers them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

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
    """Which paper row a model IS, per paper table: the ``paper_row`` label of results/paper/table<T>.csv,
    or None where the model has no row in that table. Declared per card, never inferred (a row is the
    same model: same method, size, resolution, training data and, for †, contrastive fine-tuning)."""

    size: str                            # "B", "L", "g" (det/seg recipes pick their size from it)
    t1: str | None = None                # Table 1, zero-shot classification
    t2: str | None = None                # Table 2, zero-shot retrieval
    t3: str | None = None                # Table 3, LLaVA-Bench (frozen vision tower)
    t4: str | None = None                # Table 4, ImageNet ZS/FT + ADE20K
    t5: str | None = None                # Table 5, COCO/LVIS detection
    t6: str | None = None                # Tables 6-8: ablations (rows named by the pre-training writer)
    t7: str | None = None
    t8a: str | None = None
    t8b: str | None = None

    def row(self, table: str) -> str | None:
        """The declared row of ``table`` ("1".."8b"), None when the card declares none."""
        return getattr(self, f"t{table}", None)

    def rows(self) -> dict[str, str]:
        """{table: row} of every table the card has a row in."""
        return {f.name[1:]: getattr(self, f.name) for f in fields(self)
                if f.name.startswith("t") and getattr(self, f.name)}


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
    quick_gelu: bool = False         # open_clip: build with QuickGELU (the pretrained weights were trained so)
    paper: PaperRef | None = None
    description: str = ""
    alias_of: str | None = None
    tags: tuple = ()

    def to_dict(self) -> dict:
        return asdict(self)
