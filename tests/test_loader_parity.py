"""The UTA loader (timm Eva + open_clip text through the key adapter) reproduces the official forward."""
from __future__ import annotations

import pytest
import torch

import uta_bench
from reference_eva import rope_tables, text_forward, visual_forward
from uta_bench.models.uta import UTA_ARCHS, build_visual, official_to_internal, text_cfg

TOL = 1e-5


def _check_model(arch, path, official, image_size):
    name = {"uta_tiny_p16": "uta_tiny", "uta_base_p16": "uta_b16"}[arch]
    loaded = uta_bench.load_model(name, checkpoint=str(path))
    cfg, tcfg = UTA_ARCHS[arch], text_cfg(arch)
    torch.manual_seed(1)
    images = torch.randn(2, 3, image_size, image_size)
    ours = loaded.encode_image(images, normalize=False)
    ref = visual_forward(official, images, cfg["depth"], cfg["num_heads"], cfg["patch_size"])
    assert ref.abs().mean() > 0.05  # outputs are O(1): the tolerance means something
    assert (ours - ref).abs().max().item() <= TOL
    tokens = loaded.tokenizer(["a photo of a cat.", "a diagram of unmasked token alignment"])
    ours_t = loaded.encode_text(tokens, normalize=False)
    ref_t = text_forward(official, tokens, tcfg["layers"], tcfg["heads"])
    assert (ours_t - ref_t).abs().max().item() <= TOL
    return (ours - ref).abs().max().item(), (ours_t - ref_t).abs().max().item()


def test_rope_tables_match_official_formula():
    from uta_bench.models.uta import official_rope_tables

    for arch in ("uta_base_p16", "uta_large_p14_336"):
        c = UTA_ARCHS[arch]
        cos, sin = official_rope_tables(arch)
        rcos, rsin = rope_tables(c["embed_dim"] // c["num_heads"], c["img_size"] // c["patch_size"])
        assert torch.allclose(cos, rcos, atol=1e-6) and torch.allclose(sin, rsin, atol=1e-6)


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_tiny_checkpoint_parity(official_ckpt, fmt):
    path, official = official_ckpt("uta_tiny_p16", fmt=fmt)
    _check_model("uta_tiny_p16", path, official, 64)


def test_b16_checkpoint_parity_full_file(official_ckpt):
    """Real UTA-B/16 architecture (ViT-B/16 + 24-layer width-1024 text tower), official layout on disk."""
    path, official = official_ckpt("uta_base_p16", fmt="safetensors")
    vis, txt = _check_model("uta_base_p16", path, official, 224)
    print(f"uta_b16 parity: image max|diff|={vis:.2e} text max|diff|={txt:.2e}")


def test_l14_336_visual_parity():
    """UTA-L/14@336 vision tower: official visual.* weights through the adapter into timm's Eva."""
    from conftest import save_official  # noqa: F401  (same randomisation helpers)
    from uta_bench.models.uta import internal_to_official

    arch = "uta_large_p14_336"
    torch.manual_seed(0)
    vis = build_visual(arch)
    with torch.no_grad():
        for n, p in vis.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(0.05 * torch.randn_like(p))
        vis.head.weight.normal_(0, vis.head.weight.shape[1] ** -0.5)
    official = internal_to_official({"visual." + k: v for k, v in vis.state_dict().items()}, arch)
    converted, unexpected, _ = official_to_internal(official)
    assert not unexpected
    fresh = build_visual(arch)
    fresh.load_state_dict({k[len("visual."):]: v for k, v in converted.items()}, strict=True)
    fresh.eval()
    img = torch.randn(1, 3, 336, 336)
    with torch.no_grad():
        ours = fresh(img)
    c = UTA_ARCHS[arch]
    ref = visual_forward(official, img, c["depth"], c["num_heads"], c["patch_size"])
    assert ref.abs().mean() > 0.05
    diff = (ours - ref).abs().max().item()
    print(f"uta_l14_336 visual parity max|diff|={diff:.2e}")
    assert diff <= TOL


def test_adapter_agrees_with_timm_checkpoint_filter(official_ckpt):
    """Our explicit key map and timm's own eva.checkpoint_filter_fn give the same tensors."""
    from timm.models.eva import checkpoint_filter_fn

    _, official = official_ckpt("uta_tiny_p16")
    ours, _, _ = official_to_internal(official)
    ours = {k[len("visual."):]: v for k, v in ours.items() if k.startswith("visual.")}
    model = build_visual("uta_tiny_p16")
    timm_sd = checkpoint_filter_fn({k: v for k, v in official.items() if k.startswith("visual.")}, model)
    assert set(ours) == set(timm_sd)
    assert all(torch.equal(ours[k], timm_sd[k]) for k in ours)


@pytest.mark.parametrize("arch,params_m", [("uta_base_p16", 86), ("uta_large_p14_336", 304),
                                           ("uta_giant_p14_336", 1011)])
def test_vision_tower_sizes_match_paper(arch, params_m):
    """#Params of the encoders (Tables 4/5: 86M, 304M, 1011M), built on the meta device."""
    with torch.device("meta"):
        vis = build_visual(arch, num_classes=0)
    n = sum(p.numel() for p in vis.parameters())
    assert abs(n / 1e6 - params_m) / params_m < 0.01, n
