"""Find a task card's data under the data root and list it in whichever accepted format is present.

Card ``dataset`` keys: ``path`` (str or list of candidates, relative to ``--data-root`` /
``$UTA_BENCH_DATA``), ``formats`` (accepted, in preference order), ``subdirs`` (candidate sub-folders
holding the images, e.g. ``[val, ""]``), ``labels`` (how class folders map to the card's classes:
``wnid`` = ImageNet synset dirs, ``folder`` = sorted folder order), ``split`` (wds split) and, for
retrieval, ``annotations`` (candidate annotation files) and ``image_dirs``; ``hub`` names the Hugging Face
dataset repo `uta-bench data get` fetches into the first ``path`` (see :mod:`uta_bench.data.hub`).

Labels of the result index the card's *effective* classes (the class subset when there is one),
exactly as clip_benchmark numbers them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError
from uta_bench.taskcards import TaskCard

CLASSIFICATION_FORMATS = ("wds", "objectnet", "imagenetv2", "imagefolder")
RETRIEVAL_FORMATS = ("wds", "karpathy_json", "coco_json", "flickr_txt")


@dataclass
class TaskData:
    task: str
    type: str
    fmt: str
    root: Path
    refs: list                                  # str paths or wds TarRefs, one per image
    labels: list[int] | None = None             # classification: index into effective classes
    data_classnames: list[str] | None = None    # class names shipped with the data (if any)
    captions: list[list[str]] | None = None     # retrieval: captions per image
    data_templates: list[str] | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.refs)

    def names(self) -> list[str]:
        return [str(r) for r in self.refs]


def data_root(cfg_root: str | None = None) -> Path:
    root = cfg_root or os.environ.get("UTA_BENCH_DATA")
    if root:
        return Path(root).expanduser()
    from uta_bench.paths import home

    return home() / "data"


def dataset_dirs(card: TaskCard, root: Path) -> list[Path]:
    ds = card.dataset
    if ds.get("builtin") == "sample_photos":
        from uta_bench.data.sample import make_sample_imagefolder
        from uta_bench.paths import home

        return [make_sample_imagefolder(home() / "data" / "sample_photos")]
    if "path" not in ds:
        raise UtaBenchError(f"task card {card.source}: field 'dataset.path' is missing")
    paths = ds["path"] if isinstance(ds["path"], list) else [ds["path"]]
    out = []
    for p in paths:
        p = Path(str(p)).expanduser()
        base = p if p.is_absolute() else root / p
        for sub in ds.get("subdirs", [""]):
            out.append(base / sub if sub else base)
    return out


def _looks_like(fmt: str, d: Path, ds: dict) -> bool:
    from uta_bench.data.imagefolder import objectnet_images_dir, objectnet_mapping_dir
    from uta_bench.data.wds import is_wds

    if not d.is_dir():
        return False
    if fmt == "wds":
        return is_wds(d, ds.get("split", "test"))
    if fmt == "objectnet":
        return objectnet_mapping_dir(d) is not None and objectnet_images_dir(d) is not None
    if fmt in ("imagenetv2", "imagefolder"):
        subs = [e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")]
        if not subs:
            return False
        numeric = all(s.isdigit() for s in subs)
        return numeric if fmt == "imagenetv2" else not numeric or ds.get("labels") == "folder"
    if fmt in RETRIEVAL_FORMATS:
        return any((d / a).is_file() for a in ds.get("annotations", []))
    return False


def locate(card: TaskCard, root: Path) -> tuple[str, Path]:
    """(format, folder) of the first candidate folder holding an accepted format."""
    ds = card.dataset
    formats = ds.get("formats") or (["imagefolder"] if card.type == "classification" else ["karpathy_json"])
    allowed = CLASSIFICATION_FORMATS if card.type == "classification" else RETRIEVAL_FORMATS
    bad = [f for f in formats if f not in allowed]
    if bad:
        raise UtaBenchError(f"task card {card.source}: dataset.formats has {bad[0]!r}; "
                            f"{card.type} accepts {', '.join(allowed)}")
    dirs = dataset_dirs(card, root)
    for d in dirs:
        for fmt in formats:
            if fmt in ("karpathy_json", "coco_json", "flickr_txt"):
                fmt = "karpathy_json"   # one reader picks the annotation kind
            if _looks_like(fmt, d, ds):
                return fmt, d
    tried = ", ".join(str(d) for d in dict.fromkeys(dirs))
    raise NotFoundError(f"task {card.task}: no data found (looked for {', '.join(formats)} in {tried}); "
                        "set --data-root / UTA_BENCH_DATA or see `uta-bench data check`")


def load_task_data(card: TaskCard, root: Path, effective_ids: list[str] | None = None) -> TaskData:
    """List the task's samples. ``effective_ids``: ImageNet wnids of the effective classes (wnid labels)."""
    fmt, d = locate(card, root)
    ds = card.dataset
    if card.type == "retrieval":
        return _retrieval(card, fmt, d)
    if fmt == "wds":
        from uta_bench.data.wds import list_wds

        w = list_wds(d, ds.get("split", "test"))
        if w.dataset_type != "classification":
            raise UtaBenchError(f"{d}: dataset_type.txt says {w.dataset_type!r}; task {card.task} is classification")
        return TaskData(card.task, "classification", fmt, d, w.refs, w.labels, w.classnames,
                        data_templates=w.templates)
    from uta_bench.data import imagefolder as f

    if fmt == "objectnet":
        lst = f.list_objectnet(d)
        return TaskData(card.task, "classification", fmt, d, lst.files, lst.labels, lst.classnames, info=lst.info)
    lst = f.list_imagenetv2(d) if fmt == "imagenetv2" else f.list_imagefolder(d)
    mode = ds.get("labels", "folder")
    if fmt == "imagenetv2" or mode == "wnid":
        if effective_ids is None:
            raise UtaBenchError(f"task card {card.source}: wnid/index labels need ImageNet classes")
        pos = {w: i for i, w in enumerate(effective_ids)}
        if fmt == "imagenetv2":
            from uta_bench.data.imagenet_meta import imagenet_wnids

            ids = imagenet_wnids()
            folder_ids = [ids[int(c)] for c in lst.class_ids]
        else:
            folder_ids = lst.class_ids
        extra = sorted({folder_ids[l] for l in set(lst.labels)} - set(pos))
        if extra:
            raise UtaBenchError(f"{d}: class folder {extra[0]} is not one of the {len(pos)} classes of task "
                                f"{card.task} ({len(extra)} such folders); wrong dataset for this task?")
        labels = [pos[folder_ids[l]] for l in lst.labels]
        return TaskData(card.task, "classification", fmt, d, lst.files, labels, None)
    return TaskData(card.task, "classification", fmt, d, lst.files, lst.labels,
                    lst.classnames or [c.replace("_", " ") for c in lst.class_ids])


def _retrieval(card: TaskCard, fmt: str, d: Path) -> TaskData:
    ds = card.dataset
    if fmt == "wds":
        from uta_bench.data.wds import list_wds

        w = list_wds(d, ds.get("split", "test"))
        if w.dataset_type != "retrieval":
            raise UtaBenchError(f"{d}: dataset_type.txt must say 'retrieval' for task {card.task}")
        return TaskData(card.task, "retrieval", fmt, d, w.refs, captions=w.captions)
    from uta_bench.data.retrieval import load_retrieval

    lst = load_retrieval(d, ds.get("annotations", []), ds.get("image_dirs", [""]), ds.get("split", "test"))
    return TaskData(card.task, "retrieval", lst.fmt, d, lst.refs, captions=lst.captions,
                    info={"annotation": lst.annotation})

