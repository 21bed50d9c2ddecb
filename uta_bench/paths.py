"""Where uta-bench keeps things, and atomic file writes."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path


PACKAGE_DATA = ("tasks", "recipes", "results/paper")   # top-level folders shipped in the wheel under uta_bench/_data/


def _user_dir(kind: str) -> Path:
    """Per-user folder for ``kind`` = "cache" | "data", by platform convention (XDG on Linux)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / ("Caches" if kind == "cache" else "Application Support")
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "uta-bench" / ("Cache" if kind == "cache" else "Data")
    else:
        var, default = ("XDG_CACHE_HOME", ".cache") if kind == "cache" else ("XDG_DATA_HOME", ".local/share")
        env = os.environ.get(var)
        base = Path(env) if env and os.path.isabs(env) else Path.home() / default
    return base / "uta-bench"


def home() -> Path:
    """``$UTA_BENCH_HOME`` or the user cache folder (``~/.cache/uta-bench`` on Linux): weights, caches, hash memo."""
    env = os.environ.get("UTA_BENCH_HOME")
    p = Path(env) if env else _user_dir("cache")
    p.mkdir(parents=True, exist_ok=True)
    return p


def user_data_dir() -> Path:
    """``$UTA_BENCH_HOME`` or the user data folder (``~/.local/share/uta-bench`` on Linux): the results
    store when not running from a checkout."""
    env = os.environ.get("UTA_BENCH_HOME")
    return Path(env) if env else _user_dir("data")


def checkout_root() -> Path | None:
    """The source checkout this package was imported from (has tasks/ next to uta_bench/), else None."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "tasks").is_dir() and (here / "pyproject.toml").is_file() else None


def installed_data_root() -> Path:
    """Where the wheel puts the task cards, recipes and paper rows (``uta_bench/_data``)."""
    return Path(__file__).resolve().parent / "_data"


def repo_root() -> Path | None:
    """The folder holding ``tasks/``, ``recipes/`` and ``results/paper/``: the source checkout when running
    from one, else the copies installed with the package (``uta_bench/_data``); None if neither exists."""
    root = checkout_root()
    if root is not None:
        return root
    data = installed_data_root()
    return data if (data / "tasks").is_dir() else None


data_root = repo_root


def default_store_path() -> Path:
    """``$UTA_BENCH_STORE`` (a path), else ``results/store.sqlite`` of the checkout, else the user data folder."""
    env = os.environ.get("UTA_BENCH_STORE")
    if env and "://" not in env:
        return Path(env)
    root = checkout_root()
    return (root / "results" / "store.sqlite") if root else user_data_dir() / "results" / "store.sqlite"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file in the same directory + rename: readers never see a partial file."""
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_file(path: str | os.PathLike):
    """``with atomic_file(p) as f: f.write(...)`` — a binary temp file beside ``p``, renamed onto ``p`` only
    when the block finishes; on any error the temp file is removed and ``p`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())    # mkstemp creates 0600; the file follows the umask like open()
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
