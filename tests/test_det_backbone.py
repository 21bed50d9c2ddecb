"""ViTDet backbone vs. the loader's tower (pure torch + timm: runs without mmdet/mmcv)."""
from __future__ import annotations

import pytest
import torch

from uta_bench.det.backbone import ViTDetBackbone, default_global_blocks, window_partition, window_unpartition
from uta_bench.det.weights import build_det_tower, check_checkpoint, load_tower_weights
from uta_bench.errors import CheckpointError, UtaBenchError
from uta_bench.models.loader import load_model


def _backbone(ckpt, **kw):
    tower = build_det_tower("uta_tiny")
    load_tower_weights(tower, "uta_tiny", str(ckpt))
    return ViTDetBackbone(tower.eval(), **kw).eval()


@pytest.mark.parametrize("size", [64, 224])
def test_patch_features_match_loader_trunk(official_ckpt, size):
    """Before fine-tuning, the detection tower (all-global, class token kept) reproduces the loaded model's
    timm ``forward_features`` patch tokens: at the native 64 px grid, and at 224 px where the reference is
    timm's own ``set_input_size`` (pos-embed resampling + RoPE grid update) on the loader's module."""
    path, _ = official_ckpt("uta_tiny_p16")
    loaded = load_model("uta_tiny", checkpoint=str(path))
    visual = loaded.model.visual
    if size != 64:
        visual.set_input_size(img_size=(size, size))
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = visual.forward_features(x)[:, 1:]
        bb = _backbone(path, global_blocks=range(2), use_cls_token=True)
        got, hw = bb.forward_tokens(x, final_norm=True)
    assert hw == (size // 16, size // 16)
    assert ref.shape == got.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert ref.abs().mean() > 0.1  # non-trivial features


def test_window_attention_equals_global_when_window_covers_grid(official_ckpt):
    """One window covering the whole (unpadded) grid is global attention; smaller windows are not."""
    path, _ = official_ckpt("uta_tiny_p16")
    x = torch.randn(1, 3, 128, 128)  # 8 x 8 grid
    with torch.no_grad():
        glob, _ = _backbone(path, global_blocks=(0, 1)).forward_tokens(x)
        win, _ = _backbone(path, window_size=8, global_blocks=(1,)).forward_tokens(x)
        small, _ = _backbone(path, window_size=4, global_blocks=(1,)).forward_tokens(x)
        padded, _ = _backbone(path, window_size=3, global_blocks=(1,)).forward_tokens(x)  # 9x9 padded grid
    # RoPE of an 8x8 window block = RoPE of the 8x8 global grid, so the two paths must agree exactly
    torch.testing.assert_close(win, glob, rtol=1e-5, atol=1e-5)
    assert (small - glob).abs().max() > 1e-3
    assert padded.shape == glob.shape and torch.isfinite(padded).all()


def test_window_partition_roundtrip_and_padding():
    x = torch.arange(2 * 5 * 7 * 3, dtype=torch.float32).view(2, 5, 7, 3)
    w, padded = window_partition(x, 4)
    assert padded == (8, 8) and w.shape == (2 * 4, 16, 3)
    # first window of image 0 is rows 0-3, cols 0-3 in row-major order
    torch.testing.assert_close(w[0].view(4, 4, 3), x[0, :4, :4])
    torch.testing.assert_close(window_unpartition(w, 4, padded, (5, 7)), x)


def test_pyramid_strides_and_global_blocks():
    assert default_global_blocks(12) == (2, 5, 8, 11)
    assert default_global_blocks(24) == (5, 11, 17, 23)
    bb = ViTDetBackbone(build_det_tower("uta_tiny", drop_path_rate=0.1), window_size=4, out_channels=32)
    outs = bb(torch.randn(1, 3, 128, 64))
    assert [o.shape[-2:] for o in outs] == [(32, 16), (16, 8), (8, 4), (4, 2), (2, 1)]  # strides 4..64
    assert bb.tower.blocks[1].drop_path1.drop_prob == pytest.approx(0.1)


def test_wrong_checkpoint_is_a_clear_error(official_ckpt, tmp_path):
    path, _ = official_ckpt("uta_tiny_p16")
    with pytest.raises(CheckpointError) as e:
        check_checkpoint("uta_b16", str(path))
    msg = str(e.value)
    assert "\n" not in msg and "uta_b16" in msg and "shape" in msg.lower()
    with pytest.raises(UtaBenchError, match="does not exist"):
        check_checkpoint("uta_tiny", str(tmp_path / "nope.pt"))
    with pytest.raises(UtaBenchError, match="UTA-family"):
        check_checkpoint("openai_b16", None)


def test_p14_tower_keeps_grid_with_16px_patches():
    """L/14@336 for ViTDet: a 16 px patch kernel (resampled at load time) on the same 24x24 position grid, so the
    released pos_embed loads unchanged (shapes checked on the meta device: no memory, instant)."""
    from uta_bench.models.uta import build_visual

    with torch.device("meta"):
        det = build_det_tower("uta_l14", drop_path_rate=0.4)
        ref = build_visual("uta_large_p14_336")
    assert det.patch_embed.patch_size == (16, 16) and det.patch_embed.grid_size == (24, 24)
    assert det.pos_embed.shape == ref.pos_embed.shape
    assert det.patch_embed.proj.weight.shape[-2:] == (16, 16) and ref.patch_embed.proj.weight.shape[-2:] == (14, 14)
    assert det.blocks[-1].drop_path1.drop_prob == pytest.approx(0.4)
