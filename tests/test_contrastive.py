"""Contrastive stage, unit level: accumulation == one big batch, loss vs a hand formula, layer decay,
resampling of the image tower, data streams (resume position, split over processes), recipe checks."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uta_bench.contrastive.loss import accumulated_backward, make_clip_loss
from uta_bench.contrastive.model import ClipPair, param_groups
from uta_bench.errors import UtaBenchError
from uta_bench.models.uta import UTAModel


def _clip(seed=0):
    torch.manual_seed(seed)
    model = UTAModel("uta_tiny_p16")
    with torch.no_grad():            # unit-scale projection so the loss is not flat
        model.visual.head.weight.normal_(0, 0.2)
    return ClipPair(model)


def _batch(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 64, 64, generator=g), torch.randint(1, 49000, (n, 77), generator=g)


def _grads(clip, micro, scale=100.0):
    clip.zero_grad(set_to_none=True)
    loss = accumulated_backward(clip, make_clip_loss(0, 1), micro, logit_scale=scale,
                                autocast=contextlib.nullcontext)
    return loss, {n: p.grad.clone() for n, p in clip.named_parameters() if p.grad is not None}


def test_loss_is_symmetric_cross_entropy_at_fixed_temperature():
    """open_clip's ClipLoss == (CE(rows) + CE(columns)) / 2 of 100 * I T^T, written out by hand."""
    g = torch.Generator().manual_seed(1)
    img, txt = F.normalize(torch.randn(6, 8, generator=g), dim=-1), F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    logits = (100.0 * img @ txt.T).double()
    p_rows = logits.softmax(1).diagonal()
    p_cols = logits.softmax(0).diagonal()
    by_hand = float(-(p_rows.log().mean() + p_cols.log().mean()) / 2)
    assert float(make_clip_loss(0, 1)(img, txt, 100.0)) == pytest.approx(by_hand, rel=1e-5)


def test_accumulated_micro_batches_equal_one_big_batch():
    images, tokens = _batch(24)
    images, clip = images.double(), _clip().double()        # float64: differences are maths, not rounding
    big_loss, big = _grads(clip, [(images, tokens)])
    micro = [(images[i:i + 6], tokens[i:i + 6]) for i in range(0, 24, 6)]
    acc_loss, acc = _grads(clip, micro)
    assert acc_loss == pytest.approx(big_loss, rel=1e-6)
    assert big.keys() == acc.keys() and len(big) > 10
    for k in big:
        torch.testing.assert_close(acc[k], big[k], rtol=1e-9, atol=1e-12)
    # the naive way (mean of per-micro-batch losses) gives a different gradient: the test can fail
    clip.zero_grad(set_to_none=True)
    loss_fn = make_clip_loss(0, 1)
    for x, t in micro:
        (loss_fn(*clip(x, t), 100.0) / len(micro)).backward()
    naive = clip.model.visual.head.weight.grad
    assert not torch.allclose(naive, big["model.visual.head.weight"], rtol=1e-2, atol=1e-6)


def test_layer_decay_groups_follow_timm_rule():
    """lr_scale = decay^(L + 1 - layer): embeddings deepest-decayed, head 1 (depth 2 -> 4 layers)."""
    model = UTAModel("uta_tiny_p16")
    model.logit_scale.requires_grad_(False)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.75)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {names[id(p)]: (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert scale["visual.patch_embed.proj.weight"] == (pytest.approx(0.75 ** 3), 0.05)
    assert scale["visual.pos_embed"] == (pytest.approx(0.75 ** 3), 0.0)
    assert scale["visual.blocks.0.attn.q_proj.weight"] == (pytest.approx(0.75 ** 2), 0.05)
    assert scale["visual.blocks.1.mlp.fc2.weight"] == (pytest.approx(0.75), 0.05)
    assert scale["visual.head.weight"] == (pytest.approx(1.0), 0.05)
    assert scale["text.token_embedding.weight"] == (pytest.approx(0.75 ** 3), 0.0)
    assert scale["text.transformer.resblocks.0.attn.in_proj_weight"] == (pytest.approx(0.75 ** 2), 0.05)
    assert scale["text.text_projection"][0] == pytest.approx(1.0)
    assert "logit_scale" not in scale           # fixed temperature: not optimised
    assert len(scale) == sum(1 for p in model.parameters() if p.requires_grad)


def test_p14_tower_resampled_to_p16_embeds_resized_images_the_same():
    """FlexiViT property of timm's resample_patch_embed: the p14 kernel on a 14 px patch == the resampled
    p16 kernel on that patch resized (bicubic) to 16 px; the position grid is bicubic-interpolated."""
    from uta_bench.contrastive.model import resample_visual
    from uta_bench.models.uta import build_visual

    torch.manual_seed(0)
    src = build_visual("uta_tiny_p16", img_size=56, patch_size=14)          # 4 x 4 grid of 14 px patches
    dst = build_visual("uta_tiny_p16")                                       # 4 x 4 grid of 16 px patches
    dst.load_state_dict(resample_visual(src.state_dict(), dst))
    patches = torch.randn(5, 3, 14, 14, dtype=torch.float64)
    up = F.interpolate(patches, size=(16, 16), mode="bicubic", align_corners=False, antialias=True)
    a = patches.flatten(1) @ src.patch_embed.proj.weight.double().flatten(1).T
    b = up.flatten(1) @ dst.patch_embed.proj.weight.double().flatten(1).T
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert not torch.allclose(a, up[..., 1:15, 1:15].flatten(1) @ src.patch_embed.proj.weight.double().flatten(1).T,
                              atol=1e-2)
    big = build_visual("uta_tiny_p16", img_size=96)                          # "336 px stage": 6 x 6 grid
    big.load_state_dict(resample_visual(dst.state_dict(), big))
    grid = dst.pos_embed[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False, antialias=True)
    torch.testing.assert_close(big.pos_embed[:, 1:].reshape(1, 6, 6, -1).permute(0, 3, 1, 2), want)
    torch.testing.assert_close(big.pos_embed[:, :1], dst.pos_embed[:, :1])   # class token untouched


def _shards(tmp_path, n=60, per_shard=10):
    from uta_bench.contrastive.data import write_shards

    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 255, (20, 24, 3)), f"caption {i}") for i in range(n)]
    return write_shards(pairs, tmp_path / "shards", per_shard=per_shard)


def _streams(tmp_path, rank=0, world=1, position=None, streams=2, batch=8):
    from uta_bench.contrastive.data import ImageTextSample, PairStreams

    sample = ImageTextSample(16, (0.5,) * 3, (0.5,) * 3)
    return PairStreams(str(tmp_path / "shards"), n_streams=streams, global_batch=batch, rank=rank,
                       world_size=world, seed=3, sample=sample, position=position)


def test_streams_resume_and_split_over_processes(tmp_path):
    from uta_bench.contrastive.data import global_position

    _shards(tmp_path)
    one = _streams(tmp_path)
    batches = [one.next_batch() for _ in range(12)]       # 96 samples of 60: wraps into epoch 1
    captions = [c for _, texts in batches for c in texts]
    assert set(captions) == {f"caption {i}" for i in range(60)}
    assert len(set(captions[:56])) == 56                  # 7 steps: no stream has wrapped yet (30 each)
    # resume from step 5's position reads exactly what the uninterrupted run read next
    again = _streams(tmp_path)
    for _ in range(5):
        again.next_batch()
    pos = global_position(again.local_position(), 1, 2)
    resumed = _streams(tmp_path, position=pos)
    for want_imgs, want_txt in batches[5:]:
        imgs, txt = resumed.next_batch()
        assert txt == want_txt and torch.equal(imgs, want_imgs)
    # two processes: each opens its own streams; together they read the single process's global batch
    r0, r1 = _streams(tmp_path, 0, 2), _streams(tmp_path, 1, 2)
    for want_imgs, want_txt in batches[:6]:
        (i0, t0), (i1, t1) = r0.next_batch(), r1.next_batch()
        assert len(t0) == len(t1) == 4 and sorted(t0 + t1) == sorted(want_txt)
        assert torch.equal(torch.cat([i0, i1])[np.argsort(t0 + t1)], want_imgs[np.argsort(want_txt)])


def test_bad_recipes_and_worlds_fail_with_one_line(tmp_path):
    from uta_bench.contrastive.config import from_dict, load_recipe

    with pytest.raises(UtaBenchError, match="unknown field 'lrr'"):
        from_dict({"lrr": 1.0, "vision_init": {"model": "uta_tiny"}, "text_init": {"model": "uta_tiny"}})
    with pytest.raises(UtaBenchError, match="vision_init"):
        from_dict({"samples": 10, "text_init": {"model": "uta_tiny"}})
    cfg = load_recipe("smoke")
    with pytest.raises(UtaBenchError, match="world size 3"):
        cfg.check_world(3)
    with pytest.raises(UtaBenchError, match="data_streams"):
        load_recipe("smoke", {"data_streams": 3, "global_batch_size": 66, "micro_batch_size": 11}).check_world(2)
    with pytest.raises(UtaBenchError, match="not found"):
        load_recipe("no_such_recipe")
    assert cfg.accum_steps(1) == 4 and cfg.total_steps == math.ceil(cfg.samples / cfg.global_batch_size)


def test_corrupt_sample_is_logged_and_replaced(tmp_path, caplog):
    import webdataset as wds

    _shards(tmp_path, n=20, per_shard=10)
    with wds.TarWriter(str(tmp_path / "shards" / "shard-00002.tar")) as w:   # a third shard: 1 bad of 10
        for i in range(10):
            jpg = b"not a jpeg" if i == 3 else _jpeg()
            w.write({"__key__": f"bad{i:03d}", "jpg": jpg, "txt": f"third {i}"})
    streams = _streams(tmp_path, streams=1, batch=30)
    with caplog.at_level("WARNING"):
        imgs, texts = streams.next_batch()
    assert len(texts) == 30 and imgs.shape[0] == 30 and streams.skipped == 1
    assert "third 3" not in texts and "skipping sample bad003" in caplog.text
    assert {f"third {i}" for i in range(10) if i != 3} <= set(texts)


def _jpeg():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()
