"""`uta-bench data check`: presence, counts and a content manifest (file sha256s) per task.

The manifest is written to ``$UTA_BENCH_HOME/manifests/<task>.json``. A later run whose quick
manifest (names + sizes) still matches records the manifest's content digest in the results store
(``dataset_manifest = sha256:<digest>``). Unchanged files (same size and mtime) re-use the hashes of
the previous check, so a second check takes seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.paths import atomic_write_text, home


@dataclass
class CheckResult:
    task: str
    ok: bool
    message: str
    fmt: str = "-"
    folder: str = "-"
    samples: int | None = None
    expected: int | None = None
    captions: int | None = None
    expected_captions: int | None = None
    manifest: str | None = None


def manifest_path(task: str) -> Path:
    return home() / "manifests" / f"{task.replace('/', '_').replace(':', '_')}.json"


def matching_content_digest(task: str, quick: str) -> str | None:
    p = manifest_path(task)
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return m.get("content_sha256") if m.get("quick") == quick else None


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


def _decode(ref) -> str | None:
    """None when the image decodes, else a short reason (zero-byte, truncated, not an image...)."""
    import io

    from PIL import Image

    try:
        raw = ref.read() if hasattr(ref, "read") else Path(ref).read_bytes()
        if not raw:
            return "empty file"
        with Image.open(io.BytesIO(raw)) as im:
            im.draft("RGB", (64, 64))       # JPEG: decode at reduced scale; still reads every byte
            im.load()
        return None
    except Image.UnidentifiedImageError:
        return "not an image PIL can read"
    except Exception as e:  # noqa: BLE001 - any failure to decode is reported by name
        return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"


def verify_images(data, skip: set[str], progress: bool = True, label: str = "decode") -> list[tuple]:
    """Decode every sample ``data`` counts (files in ``skip`` - unchanged and verified by the previous
    check, same size and mtime - are trusted); returns [(name, reason, file)] of those that do not decode
    (``file``: the image file or tar shard holding it, relative to the data folder)."""
    from uta_bench.progress import progress_bar

    def name_of(ref):
        return ref if isinstance(ref, str) else f"{ref.tar}:{ref.name}"

    def file_of(ref):
        return os.path.relpath(ref if isinstance(ref, str) else ref.tar, data.root)

    todo = [r for r in data.refs if file_of(r) not in skip]
    bad = []
    with progress_bar(progress and bool(todo), len(todo), label, "img") as advance, \
            ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2))) as pool:
        for ref, err in zip(todo, pool.map(_decode, todo)):
            if err:
                bad.append((name_of(ref), err, file_of(ref)))
            advance(1)
    return bad


def check_task(card, root: Path, do_hash: bool = True, progress: bool = True) -> CheckResult:
    from uta_bench.data.imagenet_meta import imagenet_wnids, subset_indices
    from uta_bench.data.resolve import load_task_data, manifest_files, quick_manifest
    from uta_bench.evaluation.tasks import IMAGENET_CLASSES

    eff = None
    if card.type == "classification" and card.classes in IMAGENET_CLASSES:
        sub = subset_indices(card.class_subset)
        w = imagenet_wnids()
        eff = [w[i] for i in sub] if sub is not None else w
    try:
        data = load_task_data(card, root, eff)
    except UtaBenchError as e:
        return CheckResult(card.task, False, str(e), expected=card.expected_samples,
                           expected_captions=card.expected_captions)
    n = len(data)
    ncap = sum(len(c) for c in data.captions) if data.captions is not None else None
    problems = []
    if card.expected_samples is not None and n != card.expected_samples:
        problems.append(f"{n} images, expected {card.expected_samples}")
    if card.expected_captions is not None and ncap != card.expected_captions:
        problems.append(f"{ncap} captions, expected {card.expected_captions}")
    res = CheckResult(card.task, not problems, "; ".join(problems) or "ok", data.fmt, str(data.root), n,
                      card.expected_samples, ncap, card.expected_captions)
    quick = quick_manifest(data)
    files = [name for name, _ in manifest_files(data)]
    mpath = manifest_path(card.task)
    previous = {}
    if mpath.is_file():
        try:
            old = json.loads(mpath.read_text())
            if old.get("root") == str(data.root):
                previous = {e["name"]: e for e in old.get("files", [])}
        except (OSError, ValueError, KeyError, TypeError):
            previous = {}
    entries = hash_files(data.root, files, previous, progress, f"hash {card.task}") if do_hash else []
    verified = {e["name"] for e in previous.values() if e.get("verified")} if do_hash else set()
    bad = verify_images(data, {e["name"] for e in entries if e is previous.get(e["name"])} & verified,
                        progress, f"decode {card.task}")
    if bad:
        shown = "; ".join(f"{name} ({err})" for name, err, _ in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        problems.append(f"{len(bad)} unreadable image(s): {shown}{more}")
        res.ok, res.message = False, "; ".join(problems)
    unreadable = {file for _, _, file in bad}
    entries = [{**e, "verified": e["name"] not in unreadable} for e in entries]
    content = None
    if do_hash:
        h = hashlib.sha256(quick.encode())
        for e in entries:
            h.update(f"{e['name']}\t{e['size']}\t{e['sha256']}\n".encode())
        content = h.hexdigest()
    atomic_write_text(mpath, json.dumps({
        "task": card.task, "task_version": card.version, "root": str(data.root), "format": data.fmt,
        "n_samples": n, "n_captions": ncap, "quick": quick, "content_sha256": content, "files": entries},
        indent=1))
    res.manifest = str(mpath)
    return res
