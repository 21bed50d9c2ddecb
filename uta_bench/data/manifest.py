"""Dataset manifests: a digest of which files (and their sizes) a number was computed on."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def folder_manifest(root: str | Path, files: list[str]) -> str:
    """sha256 over (relative path, size) of ``files``: cheap, and changes when the data changes."""
    root = Path(root)
    h = hashlib.sha256()
    for f in sorted(files):
        rel = os.path.relpath(f, root)
        h.update(f"{rel}\t{os.path.getsize(f)}\n".encode())
    return h.hexdigest()
