"""A classification task's classes: class names, the class subset and the ImageNet wnids it selects.

The one place both `uta-bench data check` and `uta-bench run zeroshot` resolve and validate them, so
the two agree: :func:`effective_wnids` before the data is listed (wnid-labelled folders are matched
against these), :func:`check_classes` after (subset within the class list, the data's own class list
and its labels within the task's effective classes).

Class names come from clip_benchmark's / open_clip's metadata (never pasted here).
"""
from __future__ import annotations

import functools
import json

from uta_bench.errors import UtaBenchError

IMAGENET_CLASSES = ("clip_benchmark:imagenet1k", "open_clip:imagenet")


@functools.lru_cache(maxsize=None)
def clip_benchmark_json(name: str) -> dict:
    """A metadata file shipped inside clip_benchmark.datasets (class names, templates), read as data.
    clip_benchmark is not a runtime dependency: ``clip_benchmark:imagenet1k`` resolves to open_clip's
    identical metadata (tests/test_imagenet_meta.py checks it against clip_benchmark)."""
    from importlib import resources

    try:
        return json.loads(resources.files("clip_benchmark.datasets").joinpath(name).read_text())
    except ModuleNotFoundError as e:
        raise UtaBenchError("class names / templates other than clip_benchmark:imagenet1k need clip_benchmark "
                            "(pip install 'clip_benchmark>=1.6')") from e


def classnames(spec, folder_names: list[str] | None = None) -> list[str]:
    """``clip_benchmark:<key>`` | ``open_clip:imagenet`` | ``folder``/``dataset`` (names shipped with the
    data: folder names, classnames.txt, ObjectNet's mapping) | list."""
    if isinstance(spec, list):
        return list(spec)
    if spec in ("folder", "dataset"):
        if folder_names is None:
            raise UtaBenchError(f"classes: {spec} needs class names in the data (folders, classnames.txt)")
        return folder_names
    src, _, key = spec.partition(":")
    if spec == "clip_benchmark:imagenet1k":
        spec = "open_clip:imagenet"
    elif src == "clip_benchmark":
        data = clip_benchmark_json("en_classnames.json")
        if key in data:
            return list(data[key])
    if spec == "open_clip:imagenet":
        from open_clip import zero_shot_metadata as z

        return list(z.IMAGENET_CLASSNAMES)
    raise UtaBenchError(f"unknown class list {spec!r}; use clip_benchmark:<dataset>, folder, or a list")


def class_subset(card) -> list[int] | None:
    """The card's ``class_subset`` as indices into its full class list (None: every class)."""
    from uta_bench.data.imagenet_meta import subset_indices

    return subset_indices(card.class_subset)


def _check_subset(card, subset: list[int] | None, n_classes: int) -> None:
    bad = next((i for i in subset or [] if not 0 <= i < n_classes), None)
    if bad is not None:
        raise UtaBenchError(f"task card {card.source}: class_subset index {bad} is outside the "
                            f"{n_classes} classes (0..{n_classes - 1})")


def effective_wnids(card) -> list[str] | None:
    """ImageNet wnids of the card's effective classes (its subset, in class order) when its classes are
    ImageNet's; None otherwise. Wnid-labelled data needs ImageNet classes."""
    if card.classes in IMAGENET_CLASSES:
        from uta_bench.data.imagenet_meta import imagenet_wnids

        wnids = imagenet_wnids()
        subset = class_subset(card)
        _check_subset(card, subset, len(wnids))
        return [wnids[i] for i in subset] if subset is not None else wnids
    if card.dataset.get("labels") == "wnid":
        raise UtaBenchError(f"task card {card.source}: dataset.labels wnid needs ImageNet classes "
                            f"({' or '.join(IMAGENET_CLASSES)})")
    return None


def check_classes(card, data, names: list[str]) -> list[int] | None:
    """Validate a listed task (``data``: TaskData) against its class list ``names``; returns the subset.

    The subset must index ``names``; a class list shipped with the data must have as many classes as
    the task evaluates (unless it *is* the class list); every label must be an effective class."""
    subset = class_subset(card)
    _check_subset(card, subset, len(names))
    n_eff = len(subset) if subset is not None else len(names)
    if data.data_classnames is not None and card.classes not in ("folder", "dataset") \
            and len(data.data_classnames) != n_eff:
        raise UtaBenchError(f"{data.root}: the data lists {len(data.data_classnames)} classes but task "
                            f"{card.task} evaluates {n_eff}; wrong dataset for this task?")
    bad_label = next((lab for lab in data.labels if not 0 <= lab < n_eff), None)
    if bad_label is not None:
        raise UtaBenchError(f"{data.root}: label {bad_label} outside the task's {n_eff} classes")
    return subset
