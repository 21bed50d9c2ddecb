"""Where the package and its data come from: under scripts/test.sh (UTA_BENCH_EXPECT_INSTALLED=1) the
suite must test the installed wheel, not the checkout, and the wheel must carry the task cards, recipes
and paper rows."""
from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

import uta_bench
from uta_bench import paths

REPO = Path(__file__).resolve().parent.parent
INSTALLED = os.environ.get("UTA_BENCH_EXPECT_INSTALLED") == "1"


@pytest.mark.skipif(not INSTALLED, reason="only under scripts/test.sh (UTA_BENCH_EXPECT_INSTALLED=1)")
def test_uta_bench_is_the_installed_wheel():
    f = Path(uta_bench.__file__).resolve()
    assert Path(sysconfig.get_paths()["purelib"]).resolve() in f.parents, f
    assert REPO not in f.parents and paths.checkout_root() is None
    data = paths.repo_root()
    assert data == paths.installed_data_root()
    def files(root):   # pip byte-compiles the recipes' .py files at install time: __pycache__ is not data
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)

    for rel in paths.PACKAGE_DATA:     # the wheel's copies equal the checkout's source of truth
        src = files(REPO / rel)
        assert src and files(data / rel) == src
        assert all((data / rel / p).read_bytes() == (REPO / rel / p).read_bytes() for p in src)


def test_user_folders_follow_xdg_outside_a_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("UTA_BENCH_HOME", raising=False)
    monkeypatch.delenv("UTA_BENCH_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    monkeypatch.setattr(paths, "checkout_root", lambda: None)
    assert paths.home() == tmp_path / "c" / "uta-bench"
    assert paths.default_store_path() == tmp_path / "d" / "uta-bench" / "results" / "store.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")          # XDG: relative values are ignored
    assert paths.user_data_dir() == Path.home() / ".local" / "share" / "uta-bench"
