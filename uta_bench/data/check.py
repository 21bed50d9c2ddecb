"""`uta-bench data check`: presence, counts, classes and a content manifest (file sha256s) per task.

A task passes only when the run would accept its data: the class checks are the run's own
(:mod:`uta_bench.data.classes`). The manifest (:mod:`uta_bench.data.manifest`) is written to
``$UTA_BENCH_HOME/manifests/<task>.json``; a later run whose quick manifest still matches records its
content digest in the results store (``dataset_manifest = sha256:<digest>``).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from uta_bench.errors import UtaBenchError


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


def list_checked(card, root: Path):
    """The task's TaskData, after the same class checks as the run (UtaBenchError when it would fail)."""
    from uta_bench.data.classes import check_classes, classnames, effective_wnids
    from uta_bench.data.resolve import load_task_data

    if card.type != "classification":
        return load_task_data(card, root)
    data = load_task_data(card, root, effective_wnids(card))
    check_classes(card, data, classnames(card.classes, data.data_classnames))
    return data


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
    from uta_bench.data.manifest import write_content_manifest

    try:
        data = list_checked(card, root)
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
    mpath, bad = write_content_manifest(data, card, do_hash, progress,
                                        verify=lambda skip: verify_images(data, skip, progress, f"decode {card.task}"))
    if bad:
        shown = "; ".join(f"{name} ({err})" for name, err, _ in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        problems.append(f"{len(bad)} unreadable image(s): {shown}{more}")
        res.ok, res.message = False, "; ".join(problems)
    res.manifest = str(mpath)
    return res
