"""Shared fixtures: an isolated uta-bench home (offline), tiny models, official-format checkpoints."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def uta_home(tmp_path, monkeypatch):
    """Every test gets its own $UTA_BENCH_HOME and store; nothing touches the user's caches."""
    home = tmp_path / "uta_home"
    home.mkdir()
    monkeypatch.setenv("UTA_BENCH_HOME", str(home))
    monkeypatch.setenv("UTA_BENCH_STORE", str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory):
    """The 8-class sample ImageFolder built from scikit-image photos (24 images)."""
    from uta_bench.data.sample import make_sample_imagefolder

    return make_sample_imagefolder(tmp_path_factory.mktemp("sample") / "sample_photos")


def save_official(arch: str, path: Path, seed: int = 0, fmt: str = "pt") -> dict:
    """Random-init UTA model of ``arch`` saved in the released key layout; returns the official dict."""
    import torch

    from uta_bench.models.uta import UTAModel, internal_to_official

    torch.manual_seed(seed)
    model = UTAModel(arch)
    with torch.no_grad():  # non-trivial biases / norms so key mix-ups cannot cancel out
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".norm" in name or "ln_" in name:
                p.add_(0.05 * torch.randn_like(p))
        # timm scales the head init by 1e-3; use a unit-scale head so outputs (and diffs) are O(1)
        model.visual.head.weight.normal_(0, model.visual.head.weight.shape[1] ** -0.5)
    official = internal_to_official(model.state_dict(), arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in official.items()}, str(path))
    else:
        torch.save(official, path)
    return official


@pytest.fixture
def official_ckpt(tmp_path):
    """Factory: official_ckpt(arch, fmt='pt', seed=0) -> (path, official state dict)."""
    def make(arch: str = "uta_tiny_p16", fmt: str = "pt", seed: int = 0):
        path = tmp_path / f"{arch}_{seed}.{fmt}"
        return path, save_official(arch, path, seed=seed, fmt=fmt)

    return make


@pytest.fixture
def one_thread():
    """Single-threaded torch for tiny models: much faster than 2 threads on a shared 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
