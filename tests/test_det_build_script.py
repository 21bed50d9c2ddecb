"""scripts/build_mmcv.sh: cache key (torch, python, cpu | CUDA version + archs), reuse of a verified wheel
without rebuilding, migration of the old layout, and the rule that a wheel failing the ops smoke test is
never published nor re-used. The wheels here are tiny stand-ins whose ``mmcv.ops`` is torchvision's
nms / roi_align (a working wheel) or absent (the ops-less wheel mmcv's setup.py builds when it cannot see
torch); the script's smoke test runs them for real in a throw-away venv."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_mmcv.sh"
TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"
TORCH = torch.__version__.replace("+", "_")
OPS_PY = '''import torch, torchvision
def nms(boxes, scores, iou_threshold, offset=0):
    keep = torchvision.ops.nms(boxes, scores, iou_threshold)
    return torch.cat([boxes[keep], scores[keep, None]], 1), keep
def roi_align(input, rois, output_size, spatial_scale, sampling_ratio, pool_mode, aligned, /):
    # like mmcv's RoIAlignFunction.apply: every argument positional, none defaulted
    return torchvision.ops.roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)
'''


def _package_files(with_ops: bool) -> dict[str, str]:
    files = {"mmcv/__init__.py": '__version__ = "2.1.0"\n'}
    if with_ops:
        files["mmcv/ops/__init__.py"] = OPS_PY
    return files


def _fake_wheel(path: Path, with_ops: bool) -> Path:
    info = "mmcv-2.1.0.dist-info"
    files = {**_package_files(with_ops), f"{info}/METADATA": "Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def _fake_sdist(path: Path, with_ops: bool) -> Path:
    """An mmcv-2.1.0 sdist whose setup.py packages the Python files only (like mmcv's 'Skip building ext
    ops' path) -- with or without a working ``mmcv.ops``."""
    src = path.parent / "mmcv-2.1.0"
    for name, text in _package_files(with_ops).items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    (src / "setup.py").write_text("from setuptools import setup, find_packages\n"
                                  "# extra_compile_args = ['-std=c++14']\n"
                                  "setup(name='mmcv', version='2.1.0', packages=find_packages())\n")
    with tarfile.open(path, "w:gz") as t:
        t.add(src, arcname="mmcv-2.1.0")
    return path


def _run(args, cache, **env):
    env = {**os.environ, "MMCV_WHEEL_CACHE": str(cache), "PYTHON": sys.executable, "FORCE_CUDA": "0", **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def _cpu_key(cache: Path) -> Path:
    return cache / f"torch-{TORCH}-{TAG}-cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU key is only chosen on a machine without GPUs")
def test_verified_wheel_is_reused_and_marked(tmp_path):
    wheel = _fake_wheel(_cpu_key(tmp_path) / f"mmcv-2.1.0-{TAG}-{TAG}-linux_x86_64.whl", with_ops=True)
    r = _run(["--build-only"], tmp_path, PIP_NO_INDEX="1")
    assert r.returncode == 0, r.stderr
    assert f"cache key torch-{TORCH}-{TAG}-cpu" in r.stdout and "reusing cached wheel" in r.stdout
    assert (tmp_path / "mmcv.READY").read_text().strip() == str(wheel)
    assert Path(f"{wheel}.verified").read_text().strip() == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert not (tmp_path / "build-mmcv.log").exists()  # nothing was built
    r = _run(["--build-only"], tmp_path, PIP_NO_INDEX="1")  # second run: the stamp matches, no re-verification
    assert r.returncode == 0 and "reusing cached wheel" in r.stdout
    assert (tmp_path / "build-mmcv.log.verify").read_text() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU key is only chosen on a machine without GPUs")
def test_old_layout_wheel_is_verified_and_moved_not_rebuilt(tmp_path):
    old = _fake_wheel(tmp_path / f"torch-{TORCH}-{TAG}" / f"mmcv-2.1.0-{TAG}-{TAG}-linux_x86_64.whl", with_ops=True)
    r = _run(["--build-only"], tmp_path, PIP_NO_INDEX="1")
    assert r.returncode == 0, r.stderr
    new = _cpu_key(tmp_path) / old.name
    assert new.is_file() and not old.exists() and Path(f"{new}.verified").is_file()
    assert (tmp_path / "mmcv.READY").read_text().strip() == str(new)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU key is only chosen on a machine without GPUs")
def test_broken_cached_wheel_is_discarded_not_reused(tmp_path):
    """An ops-less wheel in the cache (what the old script cached and marked READY) is smoke-tested, deleted,
    and a rebuild is attempted (here it cannot download anything: PIP_NO_INDEX)."""
    wheel = _fake_wheel(_cpu_key(tmp_path) / f"mmcv-2.1.0-{TAG}-{TAG}-linux_x86_64.whl", with_ops=False)
    r = _run(["--build-only"], tmp_path, PIP_NO_INDEX="1")
    assert r.returncode == 1 and "discarding broken cached wheel" in r.stderr
    assert "could not install build tools" in r.stderr  # it went on to rebuild
    assert not wheel.exists() and not (tmp_path / "mmcv.READY").exists()
    # a stamp from another wheel (e.g. the file was replaced) does not count as verified
    wheel = _fake_wheel(wheel, with_ops=False)
    Path(f"{wheel}.verified").write_text("0" * 64)
    r = _run(["--build-only"], tmp_path, PIP_NO_INDEX="1")
    assert r.returncode == 1 and "discarding broken cached wheel" in r.stderr and not wheel.exists()


def test_cuda_configuration_is_part_of_the_key(tmp_path):
    """FORCE_CUDA=1 (a GPU node) never picks up the CPU wheel: its key names the CUDA version and archs."""
    cpu = _fake_wheel(_cpu_key(tmp_path) / f"mmcv-2.1.0-{TAG}-{TAG}-linux_x86_64.whl", with_ops=True)
    r = _run(["--build-only"], tmp_path, FORCE_CUDA="1", TORCH_CUDA_ARCH_LIST="8.0;9.0", PATH="/usr/bin:/bin",
             CUDA_HOME=str(tmp_path / "no-cuda"), PIP_NO_INDEX="1")
    assert r.returncode == 1 and "reusing" not in r.stdout
    if torch.version.cuda is None:
        assert "built without CUDA" in r.stderr
    else:
        assert f"cache key torch-{TORCH}-{TAG}-cu{torch.version.cuda.replace('.', '')}-arch8.0+9.0" in r.stdout
        assert "needs nvcc" in r.stderr  # it went to build CUDA ops instead of reusing the CPU wheel
    assert cpu.is_file() and not (tmp_path / "mmcv.READY").exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU key is only chosen on a machine without GPUs")
@pytest.mark.parametrize("with_ops", [True, False])
def test_built_wheel_is_published_only_if_its_ops_work(tmp_path, with_ops):
    """The full build path on a stand-in sdist (needs PyPI for setuptools<70/wheel/ninja)."""
    sdist = _fake_sdist(tmp_path / "src" / "mmcv-2.1.0.tar.gz", with_ops)
    cache = tmp_path / "cache"
    r = _run(["--build-only"], cache, MMCV_SDIST=str(sdist))
    wheels = list(_cpu_key(cache).glob("mmcv-2.1.0-*.whl")) if _cpu_key(cache).exists() else []
    if with_ops:
        assert r.returncode == 0, r.stderr
        assert len(wheels) == 1 and Path(f"{wheels[0]}.verified").is_file()
        assert (cache / "mmcv.READY").read_text().strip() == str(wheels[0])
    else:
        assert r.returncode == 1 and "NOT cached" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
        assert wheels == [] and not (cache / "mmcv.READY").exists()


def test_bad_arguments(tmp_path):
    r = _run(["--extra", "nope"], tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("build_mmcv:") and len(r.stderr.strip().splitlines()) == 1
    r = _run(["--frobnicate"], tmp_path)
    assert r.returncode == 2 and "unknown argument" in r.stderr
    r = _run([], tmp_path, MMCV_DIST="mmcv-full")
    assert r.returncode == 2 and "MMCV_DIST" in r.stderr
