"""The built-in model cards: the paper's UTA checkpoints and the open_clip baselines of Tables 1-2.

Pure data (registered by :mod:`uta_bench.registry`). Each card declares, per paper table, which row it
is (:class:`~uta_bench.modelcard.PaperRef`); tests/test_paper_mapping.py checks every declared label
exists in results/paper/*.csv and lands there in ``uta-bench table --paper --with-runs``.
"""
from __future__ import annotations

from dataclasses import replace

from uta_bench.modelcard import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ModelCard, PaperRef, Weights

UTA_HF_REPO = "jjjjh/UTA"

# --- UTA checkpoints as released (github.com/jihaonew/UTA, weights on the HF hub under checkpoints/).
# The file names inside the repo are resolved by pattern when the exact name is unknown (see
# uta_bench.models.weights); put a downloaded file anywhere and pass --checkpoint PATH instead.
# All released files are contrastively fine-tuned (the paper's †). Table 3 (LLaVA) and the un-daggered
# rows of Tables 4-5 are the pre-trained-only towers, which are not released: no row there.
_UTA_B16 = ModelCard(
    name="uta_b16", family="uta", arch="uta_base_p16", image_size=224, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*base*16*"),
    paper=PaperRef("B", t1="UTA B/16@224 2B", t2="UTA B 2B", t4="UTA † B", t5="UTA † B"),
    description="UTA-B/16 @224 after DataComp-1B contrastive fine-tuning (IN-1K ZS 77.0)")
# 336 px: Table 2 and Tables 3-5 are 224 px models (Table 2's "UTA L 4B" is the 224 px L/14@224 4B)
_UTA_L14_336 = ModelCard(
    name="uta_l14_336", family="uta", arch="uta_large_p14_336", image_size=336, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*large*336*"),
    paper=PaperRef("L", t1="UTA L/14@336 4B"),
    description="UTA-L/14 @336 (released 'UTA-L-pix336', IN-1K ZS 81.4)")
_UTA_L14 = replace(_UTA_L14_336, name="uta_l14", alias_of="uta_l14_336",
                   description="alias of uta_l14_336 (the released UTA-L file is the 336 px one)")
# Table 2 has UTA g 0B and 2B (224 px) only
_UTA_G14_336 = ModelCard(
    name="uta_g14_336", family="uta", arch="uta_giant_p14_336", image_size=336, embed_dim=1024,
    weights=Weights(hf_repo=UTA_HF_REPO, filename="checkpoints/*giant*336*"),
    paper=PaperRef("g", t1="UTA g/14@336 3B"),
    description="UTA-g/14 @336 (released 'UTA-g-pix336', IN-1K ZS 83.9)")
# Tiny UTA-architecture model (same code path, random init) for tests and the offline demo.
_UTA_TINY = ModelCard(
    name="uta_tiny", family="uta", arch="uta_tiny_p16", image_size=64, embed_dim=64,
    description="tiny EVA-02-style ViT + text tower for tests/demo (no released weights)",
    tags=("test",))

# --- open_clip baselines. QuickGELU configs where the OpenAI weights need them.
# Table 3's "EVA-02"/"EVA-01" rows are the MIM models (Table 4 names the CLIP one "EVA-01-CLIP"), and
# LLaVA's CLIP L/14 is the 224 px one: EVA-0x-CLIP and 336 px cards have no Table 3 row. Table 5's
# "ViTDet" rows are MAE-initialised: no CLIP card is one.
_OC = [
    # name, open_clip arch, pretrained tag, image size, embed dim, PaperRef
    # (preprocessing must equal open_clip's pretrained cfg; tests/test_registry.py checks every card)
    ("openai_b16", "ViT-B-16-quickgelu", "openai", 224, 512,
     PaperRef("B", t1="CLIP B/16@224 13B", t2="CLIP B 13B", t3="CLIP B/16", t4="CLIP B")),
    ("openai_l14", "ViT-L-14-quickgelu", "openai", 224, 768,
     PaperRef("L", t1="CLIP L/14@224 13B", t2="CLIP L 13B", t3="CLIP L/14", t4="CLIP L")),
    ("openai_l14_336", "ViT-L-14-336-quickgelu", "openai", 336, 768, PaperRef("L", t1="CLIP L/14@336 13B")),
    ("openclip_b16", "ViT-B-16", "laion2b_s34b_b88k", 224, 512,
     PaperRef("B", t1="Open-CLIP B/16@224 34B", t2="Open-CLIP B 34B")),
    # the paper prints this model's pairs as 32B in Table 1 and 34B in Table 2
    ("openclip_l14", "ViT-L-14", "laion2b_s32b_b82k", 224, 768,
     PaperRef("L", t1="Open-CLIP L/14@224 32B", t2="Open-CLIP L 34B")),
    ("openclip_g14", "ViT-g-14", "laion2b_s34b_b88k", 224, 1024,
     PaperRef("g", t1="Open-CLIP g/14@224 34B", t2="Open-CLIP g 34B")),
    ("eva02_b16", "EVA02-B-16", "merged2b_s8b_b131k", 224, 512,
     PaperRef("B", t1="EVA-02-CLIP B/16@224 8B", t2="EVA-02-CLIP B 8B")),
    ("eva02_l14", "EVA02-L-14", "merged2b_s4b_b131k", 224, 768,
     PaperRef("L", t1="EVA-02-CLIP L/14@224 4B", t2="EVA-02-CLIP L 4B")),
    ("eva02_l14_336", "EVA02-L-14-336", "merged2b_s6b_b61k", 336, 768, PaperRef("L", t1="EVA-02-CLIP L/14@336 6B")),
    # the paper's EVA-01-CLIP g/14 (Table 1 IN-1K 79.3, Table 4 ZS 79.3) and UTA's pre-training teacher
    # is the g/14-*plus* model (its 1024-wide, 24-layer text tower is UTA's text encoder)
    ("eva01_g14_plus", "EVA01-g-14-plus", "merged2b_s11b_b114k", 224, 1024,
     PaperRef("g", t1="EVA-01-CLIP g/14@224 11B", t2="EVA-01-CLIP g 11B", t4="EVA-01-CLIP g", t5="EVA-01-CLIP g")),
    # the LAION-400M EVA-01-CLIP g/14 (IN-1K ZS 78.5): not the paper's model, no paper row
    ("eva01_g14", "EVA01-g-14", "laion400m_s11b_b41k", 224, 1024, PaperRef("g")),
    ("datacomp_l14", "ViT-L-14", "datacomp_xl_s13b_b90k", 224, 768,
     PaperRef("L", t1="DataComp L/14@224 13B", t2="DataComp L 13B")),
]
_INCEPTION_NORM = {"openclip_l14": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}  # laion2b_s32b_b82k was trained so


def _open_clip_card(name, arch, tag, size, dim, paper) -> ModelCard:
    mean, std = _INCEPTION_NORM.get(name, (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))
    return ModelCard(name=name, family="open_clip", arch=arch, image_size=size, embed_dim=dim, mean=mean, std=std,
                     weights=Weights(open_clip_pretrained=tag), tokenizer=f"open_clip:{arch}", paper=paper,
                     description=f"open_clip {arch} / {tag}")


CARDS: list[ModelCard] = [_UTA_B16, _UTA_L14_336, _UTA_L14, _UTA_G14_336, _UTA_TINY,
                          *(_open_clip_card(*spec) for spec in _OC)]
