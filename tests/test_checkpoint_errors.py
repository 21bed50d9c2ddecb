"""Strict loading: wrong architecture, missing/extra keys, truncated files, and the pickle trust gate."""
from __future__ import annotations

import collections
import subprocess
import sys

import pytest
import torch

import uta_bench
from uta_bench.errors import CheckpointError, NotFoundError


class Evil:  # a pickled object needing code execution (like checkpoints that pickle whole models)
    def __init__(self):
        self.payload = [1, 2, 3]


def test_wrong_architecture_gives_short_diff(official_ckpt):
    path, _ = official_ckpt("uta_tiny_p16")
    with pytest.raises(CheckpointError) as e:
        uta_bench.load_model("uta_b16", checkpoint=str(path))
    msg = str(e.value)
    assert "does not fit uta_b16" in msg and "shape mismatch" in msg and "missing" in msg
    assert "\n" not in msg and len(msg) < 1200


def test_missing_and_unexpected_keys(official_ckpt, tmp_path):
    _, official = official_ckpt("uta_tiny_p16")
    sd = dict(official)
    sd.pop("visual.blocks.1.mlp.w3.weight")
    sd["visual.blocks.0.attn.relative_position_bias_table"] = torch.zeros(3)
    path = tmp_path / "broken.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        uta_bench.load_model("uta_tiny", checkpoint=str(path))
    msg = str(e.value)
    assert "1 missing: visual.blocks.1.mlp.fc2.weight" in msg
    assert "1 unexpected: visual.blocks.0.attn.relative_position_bias_table" in msg


def test_resolution_mismatch_reported_on_rope_tables(official_ckpt, tmp_path):
    _, official = official_ckpt("uta_tiny_p16")
    sd = dict(official)
    sd["visual.rope.freqs_cos"] = torch.zeros(9, 32)
    torch.save(sd, tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="rope.freqs_cos"):
        uta_bench.load_model("uta_tiny", checkpoint=str(tmp_path / "r.pt"))


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_truncated_file(official_ckpt, tmp_path, fmt):
    path, _ = official_ckpt("uta_tiny_p16", fmt=fmt)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        uta_bench.load_model("uta_tiny", checkpoint=str(cut))


def test_missing_file():
    with pytest.raises(NotFoundError, match="does not exist"):
        uta_bench.load_model("uta_tiny", checkpoint="/nonexistent/x.pt")


def test_offline_without_weights_says_where_to_put_them(uta_home):
    with pytest.raises(NotFoundError) as e:
        uta_bench.load_model("uta_b16")
    assert str(uta_home / "weights" / "uta_b16.pt") in str(e.value) and "--checkpoint" in str(e.value)


def test_weights_found_in_home(official_ckpt, uta_home):
    path, _ = official_ckpt("uta_tiny_p16", fmt="safetensors")
    (uta_home / "weights").mkdir()
    target = uta_home / "weights" / "uta_tiny.safetensors"
    target.write_bytes(path.read_bytes())
    m = uta_bench.load_model("uta_tiny")
    assert m.weights_path == str(target) and len(m.weights_sha256) == 64


def test_pickle_needing_code_is_refused_unless_trusted(official_ckpt, tmp_path):
    _, official = official_ckpt("uta_tiny_p16")
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": collections.OrderedDict(official), "meta": Evil()}, path)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        uta_bench.load_model("uta_tiny", checkpoint=str(path))
    m = uta_bench.load_model("uta_tiny", checkpoint=str(path), trust_checkpoint=True)
    assert m.weights_sha256


def test_cli_errors_are_one_line_with_exit_code(official_ckpt, tmp_path):
    path, _ = official_ckpt("uta_tiny_p16")
    r = subprocess.run([sys.executable, "-m", "uta_bench", "run", "zeroshot", "--model", "uta_b16",
                        "--checkpoint", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: checkpoint does not fit uta_b16") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr
