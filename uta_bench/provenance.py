"""What produced a number: harness version + git commit, library versions, host, time."""
from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
import uuid
from pathlib import Path


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from uta_bench import __version__

    info = {"harness_version": __version__, "git_commit": git_commit(), "python": platform.python_version(),
            "host": platform.node()}
    for mod, key in (("torch", "torch_version"), ("open_clip", "open_clip_version"), ("timm", "timm_version")):
        try:
            info[key] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            info[key] = None
    return info
