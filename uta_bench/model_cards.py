"""The built-in model cards: the paper's UTA checkpoints and the open_clip baselines of Tables 1-2."""
from __future__ import annotations

from uta_bench.registry import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ModelCard, PaperRef, Weights, register_model

UTA_HF_REPO = "jjjjh/UTA"

# --- UTA checkpoints as released (github.com/jihaonew/UTA, weights on the HF hub under checkpoints/).
# The file names inside the repo are resolved by pattern when the exact name is unknown (see
# uta_bench.models.weights); put a downloaded file anywhere and pass --checkpoint PATH instead.
register_model(ModelCard(
    name="uta_b16", family="uta", arch="uta_base_p16", image_size=224, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*base*16*"),
    paper=PaperRef("UTA", "B", "B/16@224", "2B"),
    description="UTA-B/16 @224 after DataComp-1B contrastive fine-tuning (IN-1K ZS 77.0)"))
register_model(ModelCard(
    name="uta_l14_336", family="uta", arch="uta_large_p14_336", image_size=336, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*large*336*"),
    paper=PaperRef("UTA", "L", "L/14@336", "4B"),
    description="UTA-L/14 @336 (released 'UTA-L-pix336', IN-1K ZS 81.4)"))
register_model(ModelCard(
    name="uta_l14", family="uta", arch="uta_large_p14_336", image_size=336, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*large*336*"),
    paper=PaperRef("UTA", "L", "L/14@336", "4B"), alias_of="uta_l14_336",
    description="alias of uta_l14_336 (the released UTA-L file is the 336 px one)"))
register_model(ModelCard(
    name="uta_g14_336", family="uta", arch="uta_giant_p14_336", image_size=336, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*giant*336*"),
    paper=PaperRef("UTA", "g", "g/14@336", "3B"),
    description="UTA-g/14 @336 (released 'UTA-g-pix336', IN-1K ZS 83.9)"))
# Tiny UTA-architecture model (same code path, random init) for tests and the offline demo.
register_model(ModelCard(
    name="uta_tiny", family="uta", arch="uta_tiny_p16", image_size=64, embed_dim=64,
    description="tiny EVA-02-style ViT + text tower for tests/demo (no released weights)",
    tags=("test",)))

# --- open_clip baselines (Table 1/2 rows). QuickGELU configs where the OpenAI weights need them.
_OC = [
    # name, open_clip arch, pretrained tag, image size, embed dim, PaperRef
    # (preprocessing must equal open_clip's pretrained cfg; tests/test_registry.py checks every card)
    ("openai_b16", "ViT-B-16-quickgelu", "openai", 224, 512, PaperRef("CLIP", "B", "B/16@224", "13B")),
    ("openai_l14", "ViT-L-14-quickgelu", "openai", 224, 768, PaperRef("CLIP", "L", "L/14@224", "13B")),
    ("openai_l14_336", "ViT-L-14-336-quickgelu", "openai", 336, 768,
     PaperRef("CLIP", "L", "L/14@336", "13B")),
    ("openclip_b16", "ViT-B-16", "laion2b_s34b_b88k", 224, 512, PaperRef("Open-CLIP", "B", "B/16@224", "34B")),
    ("openclip_l14", "ViT-L-14", "laion2b_s32b_b82k", 224, 768, PaperRef("Open-CLIP", "L", "L/14@224", "32B")),
    ("openclip_g14", "ViT-g-14", "laion2b_s34b_b88k", 224, 1024, PaperRef("Open-CLIP", "g", "g/14@224", "34B")),
    ("eva02_b16", "EVA02-B-16", "merged2b_s8b_b131k", 224, 512, PaperRef("EVA-02-CLIP", "B", "B/16@224", "8B")),
    ("eva02_l14", "EVA02-L-14", "merged2b_s4b_b131k", 224, 768, PaperRef("EVA-02-CLIP", "L", "L/14@224", "4B")),
    ("eva02_l14_336", "EVA02-L-14-336", "merged2b_s6b_b61k", 336, 768,
     PaperRef("EVA-02-CLIP", "L", "L/14@336", "6B")),
    ("eva01_g14", "EVA01-g-14", "laion400m_s11b_b41k", 224, 1024, PaperRef("EVA-01-CLIP", "g", "g/14@224", "11B")),
    ("datacomp_l14", "ViT-L-14", "datacomp_xl_s13b_b90k", 224, 768, PaperRef("DataComp", "L", "L/14@224", "13B")),
]
_INCEPTION_NORM = {"openclip_l14": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}  # laion2b_s32b_b82k was trained so
for _name, _arch, _tag, _size, _dim, _paper in _OC:
    _mean, _std = _INCEPTION_NORM.get(_name, (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))
    register_model(ModelCard(
        name=_name, family="open_clip", arch=_arch, image_size=_size, embed_dim=_dim, mean=_mean, std=_std,
        weights=Weights(open_clip_pretrained=_tag), tokenizer=f"open_clip:{_arch}", paper=_paper,
        description=f"open_clip {_arch} / {_tag}"))
import uta_bench.demo.cards  # noqa: E402,F401  (offline demo card)
