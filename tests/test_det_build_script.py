"""scripts/build_mmcv.sh interface: cache key, reuse without rebuilding, marker file, argument errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_mmcv.sh"


def _run(args, cache):
    env = {**os.environ, "MMCV_WHEEL_CACHE": str(cache), "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_cached_wheel_is_reused_and_marked(tmp_path):
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    key = tmp_path / f"torch-{torch.__version__.replace('+', '_')}-{tag}"
    key.mkdir()
    wheel = key / f"mmcv-2.1.0-{tag}-{tag}-linux_x86_64.whl"
    wheel.write_bytes(b"placeholder")  # --build-only never installs it
    r = _run(["--build-only"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "reusing cached wheel" in r.stdout
    assert (tmp_path / "mmcv.READY").read_text().strip() == str(wheel)
    assert not (tmp_path / "build-mmcv.log").exists()  # nothing was built


def test_bad_arguments(tmp_path):
    r = _run(["--extra", "nope"], tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("build_mmcv:") and len(r.stderr.strip().splitlines()) == 1
    r = _run(["--frobnicate"], tmp_path)
    assert r.returncode == 2 and "unknown argument" in r.stderr
