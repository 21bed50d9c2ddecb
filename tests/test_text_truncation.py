"""Exact prompt truncation: encoding only up to the batch's longest prompt equals all 77 positions."""
from __future__ import annotations

import pytest
import torch

from uta_bench.zeroshot.text import encode_text, supports_truncation

PROMPTS = ["a photo of a tench.", "a bad photo of the great white shark.", "itap of a goldfish.",
           "a sculpture of a hammerhead shark.", "a photo of the large electric ray.",
           " ".join(["a very long caption that runs past the context length"] * 12)]   # cut at 77 tokens


def _check(model, tokenizer):
    tokens = tokenizer(PROMPTS)
    with torch.no_grad():
        full = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
        for batch in (slice(0, 5), slice(0, 6), slice(2, 3)):          # short-only, mixed, single
            fast = encode_text(model, tokens[batch], truncate=True)
            assert (fast - full[batch]).abs().max().item() <= 1e-5
    return tokens


def test_open_clip_vit_b16_text_tower_truncation_is_exact():
    import open_clip

    torch.manual_seed(0)
    cfg = open_clip.get_model_config("ViT-B-16")       # ViT-B/16's text tower (width 512, 12 layers), tiny vision
    model = open_clip.CLIP(embed_dim=cfg["embed_dim"], text_cfg=cfg["text_cfg"],
                           vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16)).eval()
    assert supports_truncation(model)
    tokens = _check(model, open_clip.get_tokenizer("ViT-B-16"))
    assert int(tokens[:5].argmax(-1).max()) + 1 < 20      # short prompts really are truncated (<20 of 77)


def test_open_clip_custom_text_tower_truncation_is_exact():
    import open_clip

    torch.manual_seed(1)
    cfg = dict(embed_dim=64, vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
               text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2))
    model = open_clip.CustomTextCLIP(**cfg).eval()                  # `.text` = TextTransformer
    assert supports_truncation(model.text)
    _check(model, open_clip.get_tokenizer("ViT-B-16"))


def test_uta_text_tower_truncation_is_exact():
    from uta_bench.models.loader import load_model

    torch.manual_seed(2)
    loaded = load_model("uta_tiny", pretrained=False)
    assert supports_truncation(loaded.model.text)
    _check(loaded.model, loaded.tokenizer)


def test_truncation_falls_back_when_not_exact():
    """A tower without a causal mask (bidirectional) is encoded at full length, never truncated."""
    import open_clip

    torch.manual_seed(3)
    model = open_clip.CustomTextCLIP(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
                                     text_cfg=dict(width=32, heads=2, layers=1, no_causal_mask=True,
                                                   pool_type="last")).eval()
    assert not supports_truncation(model.text)
    tokens = open_clip.get_tokenizer("ViT-B-16")(PROMPTS[:3])
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
    assert torch.allclose(encode_text(model, tokens), ref, atol=1e-6)


@pytest.mark.parametrize("n", [1, 7])
def test_classifier_uses_truncated_text_and_matches_full(n):
    from uta_bench.models.loader import load_model
    from uta_bench.zeroshot.classifier import build_classifier

    torch.manual_seed(4)
    loaded = load_model("uta_tiny", pretrained=False)
    names = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray", "stingray"][:n]
    temps = ["a photo of a {c}.", "a low resolution photo of the {c}, seen from far away at dusk."]
    fast = build_classifier(loaded, names, temps, use_cache=False, truncate=True)
    full = build_classifier(loaded, names, temps, use_cache=False, truncate=False)
    assert (fast.weights - full.weights).abs().max().item() <= 1e-5


# one template per group: class name in the middle, first (prefix = <sot> only), last, and one cut at 77
SHARED = ["a bad photo of a {c}.", "{c} in a video game.", "itap of my {c}",
          "a photo of a {c} " + " ".join(["seen far away over a long winding road"] * 10)]
NAMES = ["tench", "great white shark", "hammerhead", "electric ray with a very long descriptive name"]


def _check_prefix(model, tokenizer):
    from uta_bench.zeroshot.text import encode_suffix, prefix_states, shared_prefix_length, supports_prefix_sharing

    assert supports_prefix_sharing(model.text if hasattr(model, "text") else model)
    with torch.no_grad():
        for t in SHARED:
            tokens = tokenizer([t.format(c=c) for c in NAMES])
            full = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
            p = shared_prefix_length(tokens)
            assert p >= 1 and (tokens[:, :p] == tokens[:1, :p]).all()
            states = prefix_states(model, tokens[:1, :p])
            for rows in ([0, 1, 2, 3], [3, 1], [2]):
                fast = encode_suffix(model, tokens[rows, p:], states)
                assert (fast - full[rows]).abs().max().item() <= 1e-5, (t, rows)
    return [shared_prefix_length(tokenizer([t.format(c=c) for c in NAMES])) for t in SHARED]


def test_shared_prefix_is_exact_on_open_clip_b16_text_tower():
    import open_clip

    torch.manual_seed(5)
    cfg = open_clip.get_model_config("ViT-B-16")
    model = open_clip.CLIP(embed_dim=cfg["embed_dim"], text_cfg=cfg["text_cfg"],
                           vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16)).eval()
    lengths = _check_prefix(model, open_clip.get_tokenizer("ViT-B-16"))
    assert lengths[0] == 6 and lengths[1] == 1          # "<sot> a bad photo of a" / "<sot>" only


def test_shared_prefix_is_exact_on_uta_and_custom_text_towers():
    import open_clip

    from uta_bench.models.loader import load_model

    torch.manual_seed(6)
    loaded = load_model("uta_tiny", pretrained=False)
    _check_prefix(loaded.model, loaded.tokenizer)
    custom = open_clip.CustomTextCLIP(embed_dim=64, vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
                                      text_cfg=dict(width=64, heads=4, layers=2, ls_init_value=0.5)).eval()
    _check_prefix(custom, open_clip.get_tokenizer("ViT-B-16"))


def test_prefix_sharing_only_where_exact_and_classifier_uses_it(monkeypatch):
    import open_clip

    from uta_bench.zeroshot import text
    from uta_bench.models.loader import load_model
    from uta_bench.zeroshot.classifier import build_classifier

    bidir = open_clip.CustomTextCLIP(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
                                     text_cfg=dict(width=32, heads=2, layers=1, no_causal_mask=True,
                                                   pool_type="last"))
    assert not text.supports_prefix_sharing(bidir.text)
    torch.manual_seed(7)
    loaded = load_model("uta_tiny", pretrained=False)
    loaded.model.text.transformer.grad_checkpointing = True
    assert not text.supports_prefix_sharing(loaded.model.text)
    loaded.model.text.transformer.grad_checkpointing = False
    calls = []
    real = text.encode_suffix
    monkeypatch.setattr(text, "encode_suffix", lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
    fast = build_classifier(loaded, NAMES, SHARED, batch_size=3, use_cache=False)
    full = build_classifier(loaded, NAMES, SHARED, use_cache=False, truncate=False)
    assert len(calls) == 2 * len(SHARED)                # per template: 4 classes in batches of 3 + 1
    assert (fast.weights - full.weights).abs().max().item() <= 1e-5
