"""On-disk image-classification layouts: torchvision ImageFolder (synset/class dirs), ImageNetV2's
numbered class dirs and ObjectNet's folder layout with its class mapping files.

``image_folder()`` returns a torchvision ImageFolder (used by fine-tuning); the ``list_*`` functions
return plain sample lists (file paths + labels) for the zero-shot runner, which decodes images
itself (bad-image handling, sharding, feature cache).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def read_classnames(root: Path, class_dirs: list[str]) -> list[str]:
    """``classnames.txt`` (one per class dir, sorted dir order) if present, else the dir names."""
    f = root / "classnames.txt"
    if f.is_file():
        names = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
        if len(names) != len(class_dirs):
            raise UtaBenchError(f"{f} lists {len(names)} class names but {root} has {len(class_dirs)} "
                                "class folders; make them match")
        return names
    return [d.replace("_", " ") for d in class_dirs]


def image_folder(root: str | Path, transform=None):
    """A torchvision ImageFolder with a clear error for a missing/empty folder."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"dataset folder {root} does not exist; check --data-root / the task path")
    try:
        return ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise UtaBenchError(f"{root} is not an ImageFolder (class sub-folders with images): "
                            f"{str(e).splitlines()[0]}") from None


@dataclass
class FolderListing:
    """Samples of a classification folder. ``labels`` index ``class_ids`` (the folder classes)."""

    root: Path
    files: list[str]
    labels: list[int]
    class_ids: list[str]                     # folder names (wnids, numbers, ObjectNet folders)
    classnames: list[str] | None = None      # names found in the data (classnames.txt, ObjectNet map)
    info: dict = field(default_factory=dict)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _scan(root: Path, class_dirs: list[str]) -> tuple[list[str], list[int]]:
    files, labels = [], []
    st = os.stat(root)
    seen = {(st.st_dev, st.st_ino)}    # symlinked folders are followed, each real folder once (no loops)
    for i, d in enumerate(class_dirs):
        for dirpath, dirnames, names in os.walk(root / d, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames.sort()
            for n in sorted(names):
                if _is_image(n):
                    files.append(os.path.join(dirpath, n))
                    labels.append(i)
    return files, labels


def _class_dirs(root: Path) -> list[str]:
    if not root.is_dir():
        raise NotFoundError(f"dataset folder {root} does not exist; check --data-root / UTA_BENCH_DATA")
    dirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not dirs:
        raise UtaBenchError(f"{root} has no class sub-folders; expected <class>/<image> (ImageFolder)")
    return dirs


def list_imagefolder(root: str | Path) -> FolderListing:
    """torchvision ImageFolder order: sorted class dirs, sorted files (recursively)."""
    root = Path(root)
    dirs = _class_dirs(root)
    files, labels = _scan(root, dirs)
    names = read_classnames(root, dirs) if (root / "classnames.txt").is_file() else None
    return FolderListing(root, files, labels, dirs, names)


def list_imagenetv2(root: str | Path) -> FolderListing:
    """ImageNetV2 (``<n>/<hash>.jpeg``, n = ImageNet class index 0..999), labels = int(n)."""
    root = Path(root)
    dirs = [d for d in _class_dirs(root) if d.isdigit()]
    if not dirs:
        raise UtaBenchError(f"{root} has no numbered class folders (ImageNetV2 layout 0..999)")
    dirs.sort(key=int)
    files, pos = _scan(root, dirs)
    return FolderListing(root, files, [int(dirs[p]) for p in pos], [str(i) for i in range(1000)])


def objectnet_mapping_dir(root: Path) -> Path | None:
    for cand in (root, root / "mappings", root / "objectnet-1.0" / "mappings"):
        if (cand / "folder_to_objectnet_label.json").is_file() and (cand / "objectnet_to_imagenet_1k.json").is_file():
            return cand
    return None


def objectnet_images_dir(root: Path) -> Path | None:
    for cand in (root / "objectnet-1.0" / "images", root / "images"):
        if cand.is_dir():
            return cand
    return None


def list_objectnet(root: str | Path) -> FolderListing:
    """ObjectNet 1.0: ``objectnet-1.0/images/<folder>/*.png`` + mapping json files.

    As clip_benchmark does: keep the folders whose ObjectNet label maps to ImageNet-1k
    (``objectnet_to_imagenet_1k.json``; 113 classes), classes sorted by folder name, class names =
    the lower-cased ObjectNet labels.
    """
    root = Path(root)
    maps, images = objectnet_mapping_dir(root), objectnet_images_dir(root)
    if maps is None or images is None:
        raise UtaBenchError(f"{root} is not an ObjectNet folder: need objectnet-1.0/images/ and the mapping "
                            "files folder_to_objectnet_label.json + objectnet_to_imagenet_1k.json "
                            "(in objectnet-1.0/mappings/ or next to it)")
    folder_to_label = json.loads((maps / "folder_to_objectnet_label.json").read_text())
    in1k_labels = set(json.loads((maps / "objectnet_to_imagenet_1k.json").read_text()))
    unknown = sorted(in1k_labels - set(folder_to_label.values()))
    if unknown:
        raise UtaBenchError(f"{maps}: ObjectNet label {unknown[0]!r} of objectnet_to_imagenet_1k.json has no folder "
                            "in folder_to_objectnet_label.json; the mapping files do not belong together")
    folders = sorted(f for f, lab in folder_to_label.items() if lab in in1k_labels)
    missing = [f for f in folders if not (images / f).is_dir()]
    if missing:
        raise UtaBenchError(f"ObjectNet class folder {images / missing[0]} is missing "
                            f"({len(missing)} of {len(folders)} missing)")
    files, labels = _scan(images, folders)
    return FolderListing(images, files, labels, folders, [folder_to_label[f].lower() for f in folders],
                         info={"mappings": str(maps)})
