"""Dataset manifests: which files (and their sizes / hashes) a number was computed on.

Three digests, all here:

* :func:`folder_manifest` — sha256 over (relative path, size) of a file list (fine-tuning, segmentation);
* :func:`quick_manifest` — a task's data listing (names, sizes, mtimes, labels, captions): cheap, run every time;
* the *content* manifest written by `uta-bench data check` (:func:`write_content_manifest`, file sha256s)
  to ``$UTA_BENCH_HOME/manifests/<task>.json``. A later run whose quick manifest still matches records
  its content digest (:func:`matching_content_digest`). Unchanged files (same size and mtime) re-use the
  hashes of the previous check, so a second check takes seconds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from uta_bench.paths import atomic_write_text, home

log = logging.getLogger(__name__)


def folder_manifest(root: str | Path, files: list[str]) -> str:
    """sha256 over (relative path, size) of ``files``: cheap, and changes when the data changes."""
    root = Path(root)
    h = hashlib.sha256()
    for f in sorted(files):
        rel = os.path.relpath(f, root)
        h.update(f"{rel}\t{os.path.getsize(f)}\n".encode())
    return h.hexdigest()


def manifest_files(data) -> list[tuple[str, int]]:
    """(name relative to the data folder, size) of every file a number depends on (``data``: a TaskData)."""
    out = {}
    for r in data.refs:
        if isinstance(r, str):
            out[os.path.relpath(r, data.root)] = os.path.getsize(r)
        else:
            out[os.path.relpath(r.tar, data.root)] = os.path.getsize(r.tar)
    for extra in ("annotation", "mappings"):
        p = data.info.get(extra)
        if p and Path(p).is_file():
            out[os.path.relpath(p, data.root)] = os.path.getsize(p)
    return sorted(out.items())


def quick_manifest(data) -> str:
    """sha256 over the data folder, (relative name, size, mtime) of the data files and every sample's
    name / tar member offset+size, labels and captions: cheap, and different for different data even
    when two tar shards happen to have the same (block-padded) size."""
    h = hashlib.sha256(f"{Path(data.root).resolve()}\n".encode())
    for rel, size in manifest_files(data):
        h.update(f"{rel}\t{size}\t{os.stat(data.root / rel).st_mtime_ns}\n".encode())
    h.update(f"{data.fmt}\t{len(data.refs)}\n".encode())
    for r in data.refs:
        if isinstance(r, str):
            h.update(os.path.relpath(r, data.root).encode() + b"\n")
        else:
            h.update(f"{os.path.relpath(r.tar, data.root)}:{r.name}:{r.offset}:{r.size}\n".encode())
    if data.labels is not None:
        h.update(",".join(map(str, data.labels)).encode())
    if data.captions is not None:
        h.update("\x1e".join("\x1f".join(c) for c in data.captions).encode())
    return h.hexdigest()


def manifest_path(task: str) -> Path:
    return home() / "manifests" / f"{task.replace('/', '_').replace(':', '_')}.json"


def matching_content_digest(task: str, quick: str) -> str | None:
    p = manifest_path(task)
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return m.get("content_sha256") if m.get("quick") == quick else None


def run_manifest(data) -> str:
    """What a run records: the content digest of `uta-bench data check` when it still matches, else the quick one."""
    quick = quick_manifest(data)
    full = matching_content_digest(data.task, quick)
    return f"sha256:{full}" if full else f"quick:{quick}"


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hash_files(root: Path, names: list[str], previous: dict, progress: bool = True, label: str = "hash") -> list[dict]:
    """[{name, size, mtime, sha256}] for ``names`` (relative to ``root``), re-using unchanged entries."""
    from uta_bench.progress import progress_bar

    out: dict[str, dict] = {}
    todo = []
    for n in names:
        st = os.stat(root / n)
        prev = previous.get(n)
        if prev and prev.get("size") == st.st_size and prev.get("mtime") == st.st_mtime_ns:
            out[n] = prev
        else:
            todo.append((n, st))
    total = sum(st.st_size for _, st in todo)
    with progress_bar(progress and bool(todo), total, label, "B") as advance, \
            ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2))) as pool:
        def one(item):
            n, st = item
            return n, {"name": n, "size": st.st_size, "mtime": st.st_mtime_ns, "sha256": _sha256(str(root / n))}

        for n, entry in pool.map(one, todo):
            out[n] = entry
            advance(entry["size"])
    return [out[n] for n in names]


def _previous_entries(mpath: Path, root: Path) -> dict:
    if not mpath.is_file():
        return {}
    try:
        old = json.loads(mpath.read_text())
        if old.get("root") == str(root):
            return {e["name"]: e for e in old.get("files", [])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("previous manifest %s is unreadable (%s); hashing every file again", mpath, e)
    return {}


def write_content_manifest(data, card, do_hash: bool = True, progress: bool = True,
                           verify=None) -> tuple[Path, list]:
    """Hash ``data``'s files (re-using unchanged entries) and write the task's manifest atomically.

    ``verify(skip)``, when given, decodes the samples (files in ``skip`` - unchanged and verified by the
    previous check - are trusted) and returns ``[(name, reason, file)]`` of those that do not decode; each
    entry records whether its file verified. Returns the manifest path and that list."""
    quick = quick_manifest(data)
    files = [name for name, _ in manifest_files(data)]
    mpath = manifest_path(card.task)
    previous = _previous_entries(mpath, data.root)
    entries = hash_files(data.root, files, previous, progress, f"hash {card.task}") if do_hash else []
    bad = []
    if verify is not None:
        verified = {e["name"] for e in previous.values() if e.get("verified")} if do_hash else set()
        bad = verify({e["name"] for e in entries if e is previous.get(e["name"])} & verified)
        unreadable = {file for _, _, file in bad}
        entries = [{**e, "verified": e["name"] not in unreadable} for e in entries]
    content = None
    if do_hash:
        h = hashlib.sha256(quick.encode())
        for e in entries:
            h.update(f"{e['name']}\t{e['size']}\t{e['sha256']}\n".encode())
        content = h.hexdigest()
    ncap = sum(len(c) for c in data.captions) if data.captions is not None else None
    from uta_bench.data.hub import hub_source

    source = hub_source(data.root)      # `data get`: the hub repo and commit the files came from
    atomic_write_text(mpath, json.dumps({**({"source": source} if source else {}),
        "task": card.task, "task_version": card.version, "root": str(data.root), "format": data.fmt,
        "n_samples": len(data), "n_captions": ncap, "quick": quick, "content_sha256": content, "files": entries},
        indent=1))
    return mpath, bad
