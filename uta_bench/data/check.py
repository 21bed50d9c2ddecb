"""`uta-bench data check`: presence, counts, classes and a content manifest (file sha256s) per task.

A task passes only when the run would accept its data: the class checks are the run's own
(:mod:`uta_bench.data.classes`). The manifest (:mod:`uta_bench.data.manifest`) is written to
``$UTA_BENCH_HOME/manifests/<task>.json``; a later run whose quick manifest still matches records its
content digest in the results store (``dataset_manifest = sha256:<digest>``).
"""
from __future__ import annotations

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
    res.manifest = str(write_content_manifest(data, card, do_hash, progress))
    return res
