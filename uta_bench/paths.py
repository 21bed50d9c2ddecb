"""Where uta-bench keeps things, and atomic file writes."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def home() -> Path:
    """``$UTA_BENCH_HOME`` or ``~/.cache/uta-bench`` (weights, caches, hash memo)."""
    p = Path(os.environ.get("UTA_BENCH_HOME", Path.home() / ".cache" / "uta-bench"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def repo_root() -> Path | None:
    """The source checkout (has results/ and tasks/), when running from one."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "tasks").is_dir() else None


def default_store_path() -> Path:
    env = os.environ.get("UTA_BENCH_STORE")
    if env and "://" not in env:
        return Path(env)
    root = repo_root()
    return (root / "results" / "store.sqlite") if root else home() / "results" / "store.sqlite"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file in the same directory + rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())    # mkstemp creates 0600; the file follows the umask like open()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
