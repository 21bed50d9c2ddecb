"""Segmentation pieces that need no mmseg: metric (hand-worked), ADE20K layout, Eva multi-level backbone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from uta_bench.errors import UtaBenchError


def test_metric_hand_worked_example():
    from uta_bench.seg.metric import SegConfusion

    gt = np.array([[0, 0, 1, 1],
                   [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1],
                     [2, 2, 0, 0]])              # last pixel ignored (gt 255)
    acc = SegConfusion(num_classes=4)
    acc.add(pred, gt)
    # class 0: tp 1 (0,0); pred area 2 (0,0),(1,2); gt area 3 -> union 4 -> 1/4
    # class 1: tp 2; pred 3; gt 2 -> union 3 -> 2/3
    # class 2: tp 1 (1,1); pred 2 (1,0),(1,1); gt 2 -> union 3 -> 1/3
    # class 3: empty union -> excluded from the mean
    pc = acc.per_class()
    np.testing.assert_allclose(pc["IoU"][:3], [1 / 4, 2 / 3, 1 / 3])
    assert np.isnan(pc["IoU"][3])
    m = acc.metrics()
    assert m["mIoU"] == pytest.approx((1 / 4 + 2 / 3 + 1 / 3) / 3)
    assert m["aAcc"] == pytest.approx(4 / 7)
    assert m["mAcc"] == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)


def test_metric_rejects_unreduced_labels():
    from uta_bench.seg.metric import SegConfusion

    with pytest.raises(ValueError, match="reduce_zero_label"):
        SegConfusion(150).add(np.zeros((2, 2)), np.full((2, 2), 150))


def test_ade_sample_layout_and_checks(tmp_path):
    from PIL import Image

    from uta_bench.seg.ade import check_ade_root, make_ade20k_sample

    root = make_ade20k_sample(tmp_path / "ADEChallengeData2016", n_train=3, n_val=2, size=64)
    assert check_ade_root(root) == {"training": 3, "validation": 2}
    lab = np.asarray(Image.open(root / "annotations" / "training" / "ADE_train_00000001.png"))
    assert lab.dtype == np.uint8 and lab.ndim == 2 and lab.max() <= 150 and (lab == 0).any()
    (root / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    with pytest.raises(UtaBenchError, match="have no label map"):
        check_ade_root(root)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "annotations" / "validation" / "ADE_val_00000002.png")
    with pytest.raises(UtaBenchError, match="not an ADE20K label map"):
        check_ade_root(root, sample=5)
    with pytest.raises(UtaBenchError, match="does not exist"):
        check_ade_root(tmp_path / "nope")


def test_backbone_matches_loaded_tower(official_ckpt):
    """At the native size, the last level is the tower's own patch tokens (before the final norm)."""
    from uta_bench.models.loader import load_model
    from uta_bench.seg.backbone import EvaMultiLevel

    path, _ = official_ckpt("uta_tiny_p16")
    bb = EvaMultiLevel("uta_tiny", img_size=64, patch_size=16, out_indices=(0, 0, 1, 1)).eval()
    bb.load_from_model(checkpoint=str(path))
    vis = load_model("uta_tiny", checkpoint=str(path)).model.visual
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = bb(x)
        ref = vis.forward_features(x)[:, 1:]                     # normed patch tokens, class token dropped
        got = bb.eva.norm(feats[-1].flatten(2).transpose(1, 2))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 4, 4)] * 4
    torch.testing.assert_close(got, ref)


def test_backbone_other_resolution_resamples_pos_embed(official_ckpt):
    from timm.layers import resample_abs_pos_embed

    from uta_bench.models.loader import load_model
    from uta_bench.seg.backbone import EvaMultiLevel

    path, _ = official_ckpt("uta_tiny_p16")
    bb = EvaMultiLevel("uta_tiny", img_size=128, drop_path_rate=0.1)
    info = bb.load_from_model(checkpoint=str(path))
    src = load_model("uta_tiny", checkpoint=str(path)).model.visual.pos_embed
    torch.testing.assert_close(bb.eva.pos_embed, resample_abs_pos_embed(src, [8, 8], [4, 4], num_prefix_tokens=1))
    assert info["weights_sha256"] and bb.out_indices == (0, 0, 1, 1)
    assert [tuple(f.shape) for f in bb.eval()(torch.randn(1, 3, 128, 96))] == [(1, 64, 8, 6)] * 4


def test_layer_ids_and_defaults():
    from uta_bench.seg.backbone import EvaMultiLevel, default_out_indices, layer_id

    assert default_out_indices(12) == (3, 5, 7, 11) and default_out_indices(24) == (7, 11, 15, 23)
    assert default_out_indices(40) == (9, 19, 29, 39)
    assert layer_id("backbone.eva.pos_embed", 12) == 0
    assert layer_id("backbone.eva.patch_embed.proj.weight", 12) == 0
    assert layer_id("backbone.eva.blocks.4.attn.qkv.weight", 12) == 5
    assert layer_id("backbone.eva.norm.weight", 12) == 13
    assert layer_id("decode_head.conv_seg.weight", 12) == 13
    with pytest.raises(UtaBenchError, match="no timm Eva"):
        EvaMultiLevel("openai_b16")
    with pytest.raises(UtaBenchError, match="outside the 2 blocks"):
        EvaMultiLevel("uta_tiny", out_indices=(0, 1, 2, 3))


def test_cli_without_mmcv_gives_install_hint(monkeypatch, capsys):
    """With mmcv ops absent (simulated), `run seg` / `train seg` say what to install, in one line."""
    import sys

    from uta_bench.cli.main import main

    monkeypatch.setitem(sys.modules, "mmcv.ops", None)       # makes `import mmcv.ops` raise ImportError
    for args in (["run", "seg", "--seg-checkpoint", "x.safetensors"], ["train", "seg", "--iters", "1"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and "pip install -e '.[seg]'" in err[0], err


def test_patch14_tower_is_resampled_to_patch16(monkeypatch):
    """L/14 towers run UperNet at patch 16 (EVA's psz14to16): kernel + pos-embed resampled from the source."""
    from timm.layers import resample_abs_pos_embed, resample_patch_embed

    from uta_bench.models import uta
    from uta_bench.models.loader import load_model
    from uta_bench.seg.backbone import EvaMultiLevel

    tiny14 = dict(uta.UTA_ARCHS["uta_tiny_p16"], patch_size=14, img_size=56)   # a 4x4-grid patch-14 tower
    monkeypatch.setitem(uta.UTA_ARCHS, "uta_tiny_p16", tiny14)
    torch.manual_seed(0)
    bb = EvaMultiLevel("uta_tiny", img_size=128, patch_size=16)
    torch.manual_seed(1)
    bb.load_from_model(pretrained=False)
    torch.manual_seed(1)
    src = load_model("uta_tiny", pretrained=False).model.visual          # same seed: the same random tower
    assert src.patch_embed.proj.weight.shape[-1] == 14
    want = resample_patch_embed(src.patch_embed.proj.weight, [16, 16])
    torch.testing.assert_close(bb.eva.patch_embed.proj.weight, want)
    torch.testing.assert_close(bb.eva.pos_embed, resample_abs_pos_embed(src.pos_embed, [8, 8], [4, 4],
                                                                        num_prefix_tokens=1))
    assert [tuple(f.shape) for f in bb.eval()(torch.randn(1, 3, 128, 128))] == [(1, 64, 8, 8)] * 4
