"""recipes/contrastive/ carry the paper's numbers (Sec. 3, Sec. 4.1, App. A.1, Table 1), checked field by field.

The sentences are quoted here; when the paper's text is on disk each quote is also checked to be in it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from uta_bench.contrastive.config import find_recipe, load_recipe

PAPER_MD = Path("/work/shared/paper/uta_paper.md")
A1 = {
    "batch": "We use a total batch size of 49,152 for fine-tuning.",
    "lamb": "we use LAMB (You et al., 2019) optimizer with peak learning rate of 2×10^{-4} and 4×10^{-4}",
    "lr_who": "for base and large models respectively",
    "layer_decay": "set the decay rate to 0.75 and 0.85 for base and large models respectively",
    "wd": "The weight decay is set to 0.05 for all models.",
    "cosine": "We use cosine learning rate schedule and decay the learning rate to 0.",
    "temperature": "fix the temperature value in CLIP loss to 0.01",
    "datacomp": "Then we perform contrastive fine-tuning on the DataComp-1B dataset",
    "p16": "we use patch size of 16 for fine-tuning UTA-B",
    "b_2b": "After fine-tuning with only 2B image-text samples",
    "l_4b": "After fine-tuning with 4B samples",
    "336": "with 336×336 input resolution using 200M samples",
    "table_b": "UTA\tB/16@224\t2B",
    "table_l": "UTA\tL/14@224\t4B",
    "table_l336": "UTA\tL/14@336\t4B",
    "table_g": "UTA\tg/14@224\t2B",
    "table_g336": "UTA\tg/14@336\t3B",
}
COMMON = dict(global_batch_size=49152, optimizer="lamb", min_lr=0.0, weight_decay=0.05, temperature=0.01)
# (recipe, arch, lr, layer decay, samples): B = base, L = large; g uses the large values (App. A.1 names
# only base and large); the 336 stages continue the 224 run's model.
EXPECTED = [
    ("b16_2b", "uta_base_p16", 2e-4, 0.75, 2_000_000_000),
    ("l14_4b", "uta_large_p14", 4e-4, 0.85, 4_000_000_000),
    ("l14_336", "uta_large_p14_336", 4e-4, 0.85, 200_000_000),
    ("g14_2b", "uta_giant_p14", 4e-4, 0.85, 2_000_000_000),
    ("g14_336", "uta_giant_p14_336", 4e-4, 0.85, 3_000_000_000 - 2_000_000_000),
]


@pytest.mark.skipif(not PAPER_MD.is_file(), reason="paper text not on this machine")
def test_quotes_are_the_papers_words():
    text = PAPER_MD.read_text()
    for key, quote in A1.items():
        assert quote in text, key
    for name, *_ in EXPECTED:
        for quote in yaml.safe_load(find_recipe(name).read_text()).get("paper", []):
            assert quote in text, (name, quote)


@pytest.mark.parametrize("name,arch,lr,decay,samples", EXPECTED)
def test_recipe_numbers_match_appendix_a1(name, arch, lr, decay, samples):
    from uta_bench.models.uta import UTA_ARCHS

    cfg = load_recipe(name)
    for key, want in COMMON.items():
        assert getattr(cfg, key) == want, (name, key)
    assert (cfg.arch, cfg.lr, cfg.layer_decay, cfg.samples) == (arch, lr, decay, samples)
    a = UTA_ARCHS[cfg.arch]
    assert a["img_size"] == (336 if "336" in name else 224)
    assert a["patch_size"] == (16 if name.startswith("b16") else 14)
    init = cfg.text_init
    if "336" in name:   # continues its 224 stage: both towers from that run's output
        base = load_recipe(name.replace("_336", "_4b" if name.startswith("l") else "_2b"))
        assert cfg.vision_init == init == {"checkpoint": f"{base.output_dir}/model.safetensors"}
    else:               # EVA-01-CLIP-g/14-plus text tower; image tower from `train pretrain`
        assert init == {"model": "eva01_g14_plus"}
        assert cfg.vision_init["checkpoint"].startswith("runs/pretrain/") and cfg.vision_init["checkpoint"].endswith(
            "student.safetensors")
    # the global batch splits into whole micro-batches on 8..256 GPUs, and whole stream shares
    for world in (8, 16, 64, 128):
        cfg.check_world(world)
        assert cfg.accum_steps(world) * world * cfg.micro_batch_size == 49152
