"""Exact prompt truncation: encoding only up to the batch's longest prompt equals all 77 positions."""
from __future__ import annotations

import pytest
import torch

from uta_bench.text import encode_text, supports_truncation

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
    from uta_bench.zeroshot import build_classifier

    torch.manual_seed(4)
    loaded = load_model("uta_tiny", pretrained=False)
    names = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray", "stingray"][:n]
    temps = ["a photo of a {c}.", "a low resolution photo of the {c}, seen from far away at dusk."]
    fast = build_classifier(loaded, names, temps, use_cache=False, truncate=True)
    full = build_classifier(loaded, names, temps, use_cache=False, truncate=False)
    assert (fast.weights - full.weights).abs().max().item() <= 1e-5
