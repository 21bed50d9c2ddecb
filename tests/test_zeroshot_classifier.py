"""Zero-shot classifier builder: parity with clip_benchmark, slicing, and the on-disk cache."""
from __future__ import annotations

import os

import pytest
import torch

import uta_bench
from uta_bench.zeroshot import classifier as zeroshot
from uta_bench.zeroshot.classifier import build_classifier, cache_dir

CLASSES = ["cat", "dog", "golden retriever", "airliner", "cup of coffee", "rocket", "moon"]
TEMPLATES = ["a photo of a {c}.", "a blurry photo of the {c}.", "itap of my {c} on a sunny day in the park.",
             "{c}"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return uta_bench.load_model("uta_tiny", pretrained=False)


def test_matches_clip_benchmark(tiny):
    """Batched, sorted, truncated build == clip_benchmark's per-class full-length loop (fp32)."""
    from clip_benchmark.metrics.zeroshot_classification import zero_shot_classifier

    ref = zero_shot_classifier(tiny.model, tiny.tokenizer, CLASSES, TEMPLATES, "cpu", amp=False)
    ours = build_classifier(tiny, CLASSES, TEMPLATES, batch_size=5, use_cache=False)
    assert ours.weights.shape == ref.shape == (64, len(CLASSES))
    assert (ours.weights - ref).abs().max().item() <= 1e-5


def test_subset_equals_building_the_subset(tiny):
    full = build_classifier(tiny, CLASSES, TEMPLATES, use_cache=False)
    idx = [5, 0, 3]
    sub = full.subset(idx)
    direct = build_classifier(tiny, [CLASSES[i] for i in idx], TEMPLATES, use_cache=False)
    assert sub.classnames == direct.classnames
    assert (sub.weights - direct.weights).abs().max().item() <= 1e-6


def test_callable_templates_like_open_clip(tiny):
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    a = build_classifier(tiny, CLASSES[:2], OPENAI_IMAGENET_TEMPLATES[:5], use_cache=False)
    strings = [t("{c}") for t in OPENAI_IMAGENET_TEMPLATES[:5]]
    b = build_classifier(tiny, CLASSES[:2], strings, use_cache=False)
    assert torch.equal(a.weights, b.weights) and a.key == b.key


def test_cache_hit_is_a_file_read(tiny, monkeypatch):
    first = build_classifier(tiny, CLASSES, TEMPLATES)
    files = list(cache_dir().glob("*.safetensors"))
    assert len(files) == 1 and files[0].stem == first.key

    def boom(*a, **k):
        raise AssertionError("text tower must not run on a cache hit")

    monkeypatch.setattr("uta_bench.zeroshot.text.encode_text", boom)
    second = build_classifier(tiny, CLASSES, TEMPLATES)
    assert torch.equal(first.weights, second.weights)


def test_cache_key_changes_with_inputs(tiny):
    keys = {build_classifier(tiny, CLASSES, TEMPLATES).key,
            build_classifier(tiny, CLASSES[:-1], TEMPLATES).key,
            build_classifier(tiny, CLASSES, TEMPLATES[:-1]).key}
    other = uta_bench.load_model("uta_tiny", pretrained=False)  # different random weights
    keys.add(build_classifier(other, CLASSES, TEMPLATES).key)
    assert len(keys) == 4 and len(list(cache_dir().glob("*.safetensors"))) == 4


def test_killed_write_leaves_no_entry(tiny, monkeypatch):
    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies between writing the temp file and the rename

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            build_classifier(tiny, CLASSES, TEMPLATES)
    assert not list(cache_dir().glob("*")), "neither a final entry nor a temp file may remain"
    assert build_classifier(tiny, CLASSES, TEMPLATES).weights.shape == (64, len(CLASSES))


def test_corrupt_entry_is_rebuilt(tiny):
    good = build_classifier(tiny, CLASSES, TEMPLATES)
    path = cache_dir() / f"{good.key}.safetensors"
    path.write_bytes(path.read_bytes()[:40])
    again = build_classifier(tiny, CLASSES, TEMPLATES)
    assert torch.equal(good.weights, again.weights)
    assert zeroshot._read(path) is not None  # rewritten whole
