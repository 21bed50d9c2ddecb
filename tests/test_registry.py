"""Model cards agree with the libraries that define the models."""
from __future__ import annotations

import open_clip
import pytest
import torch

import uta_bench
from uta_bench.registry import cards, get_card, resolve_alias

OC = [n for n, c in cards().items() if c.family == "open_clip"]


@pytest.mark.parametrize("name", OC)
def test_open_clip_cards_match_pretrained_cfg(name):
    c = get_card(name)
    cfg = open_clip.get_pretrained_cfg(c.arch, c.weights.open_clip_pretrained)
    mc = open_clip.get_model_config(c.arch)
    assert cfg, f"open_clip has no {c.arch}/{c.weights.open_clip_pretrained}"
    assert tuple(cfg.get("mean", uta_bench.registry.OPENAI_CLIP_MEAN)) == pytest.approx(c.mean)
    assert tuple(cfg.get("std", uta_bench.registry.OPENAI_CLIP_STD)) == pytest.approx(c.std)
    assert cfg.get("interpolation", "bicubic") == c.interpolation
    assert cfg.get("resize_mode", "shortest") == c.resize_mode
    assert mc["vision_cfg"]["image_size"] == c.image_size and mc["embed_dim"] == c.embed_dim


def test_alias_and_paper_rows():
    assert resolve_alias("uta_l14").name == "uta_l14_336"
    alias = get_card("uta_l14")                 # resolved: the target's data under the alias name
    assert alias.name == "uta_l14" and alias.alias_of == "uta_l14_336"
    assert alias.paper == get_card("uta_l14_336").paper and alias.weights == get_card("uta_l14_336").weights
    assert get_card("eva01_g14_plus").paper.t1 == "EVA-01-CLIP g/14@224 11B"


def test_registry_does_not_depend_on_import_order():
    """`import uta_bench.demo.cards` first used to leave only the demo card registered."""
    import subprocess
    import sys

    code = ("import uta_bench.demo.cards\n"
            "from uta_bench.registry import get_card, list_models\n"
            "assert get_card('uta_b16').arch == 'uta_base_p16'\n"
            "assert {'uta_demo', 'uta_b16', 'eva01_g14_plus'} <= set(list_models())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_alias_of_a_registered_target_only():
    from dataclasses import replace

    import uta_bench.registry as reg

    bad = replace(get_card("uta_tiny"), name="_tmp_alias", alias_of="no_such_card")
    reg.register_model(bad)
    try:
        with pytest.raises(ValueError, match="no_such_card"):
            get_card("_tmp_alias")
    finally:
        reg._REGISTRY.pop("_tmp_alias")


def test_open_clip_checkpoint_roundtrip(tmp_path):
    """A baseline saved as a state dict loads back through load_model (strict) with identical outputs."""
    torch.manual_seed(0)
    ref = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    path = tmp_path / "vitb16.pt"
    torch.save(ref.state_dict(), path)
    m = uta_bench.load_model("openclip_b16", checkpoint=str(path))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(m.encode_image(x, normalize=False), ref.encode_image(x), atol=1e-6)
    tok = m.tokenizer(["a photo of a dog"])
    with torch.no_grad():
        assert torch.allclose(m.encode_text(tok, normalize=False), ref.encode_text(tok), atol=1e-6)


@pytest.mark.parametrize("precision,expect", [("fp32", "fp32"), ("bf16", "bf16-autocast")])
def test_precision_recorded_as_run(precision, expect):
    m = uta_bench.load_model("uta_tiny", pretrained=False, precision=precision)
    assert m.precision_run == expect and m.provenance()["precision_run"] == expect
    x = torch.randn(2, 3, 64, 64)
    out = m.encode_image(x)
    assert out.dtype == torch.float32 and torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-4)
    if precision == "bf16":  # autocast really ran: results differ from fp32 at bf16 resolution
        m32 = uta_bench.load_model("uta_tiny", pretrained=False)
        m32.model.load_state_dict(m.model.state_dict())
        diff = (m32.encode_image(x) - out).abs().max().item()
        assert 0 < diff < 0.05


def test_sha256_mismatch_is_refused(tmp_path):
    from dataclasses import replace

    from uta_bench.errors import CheckpointError
    from uta_bench.models.weights import verify_sha256

    f = tmp_path / "w.pt"
    f.write_bytes(b"not the released file")
    card = replace(get_card("uta_b16"), weights=replace(get_card("uta_b16").weights, sha256="0" * 64))
    with pytest.raises(CheckpointError, match="expected 000000000000"):
        verify_sha256(card, f)
