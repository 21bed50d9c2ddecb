"""Image-text retrieval sets: Karpathy-split JSON, clip_benchmark's COCO/Flickr annotation files, wds.

Accepted annotation files (looked up in the dataset folder, in the card's order):

* Karpathy ``dataset_coco.json`` / ``dataset_flickr30k.json``: ``images[].{filepath?, filename, split,
  sentences[].raw}``; the ``test`` split is used (COCO 5K: 5,000 images / 25,010 captions; Flickr30k
  1K: 1,000 / 5,000).
* COCO caption format (clip_benchmark's ``coco_test_karpathy.json``): ``images[].{id, file_name}``,
  ``annotations[].{image_id, caption}``; images in id order, captions in file order (as
  torchvision's CocoCaptions).
* clip_benchmark's ``flickr30k_test_karpathy.txt``: a header line, then ``<image>.jpg,<caption>``.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError


@dataclass
class RetrievalListing:
    root: Path
    refs: list              # image file paths (str) or wds TarRefs
    captions: list[list[str]]
    fmt: str
    annotation: str | None = None

    @property
    def n_captions(self) -> int:
        return sum(len(c) for c in self.captions)


def _find_image(root: Path, image_dirs: list[str], rel: str) -> Path | None:
    for d in image_dirs:
        p = root / d / rel
        if p.is_file():
            return p
    return None


def _resolve_images(root: Path, rels: list[str], image_dirs: list[str], ann: Path) -> list[str]:
    """Pick the image dir that holds the first image, then require every image there."""
    base = None
    for d in image_dirs:
        if rels and (root / d / rels[0]).is_file():
            base = root / d
            break
    if base is None:
        tried = ", ".join(str(root / d) for d in image_dirs)
        raise NotFoundError(f"image {rels[0] if rels else '?'} of {ann.name} not found under {tried}; "
                            "put the images there or set dataset.image_dirs in the task card")
    return [str(base / r) for r in rels]


def load_karpathy(ann: Path, root: Path, image_dirs: list[str], split: str = "test") -> RetrievalListing:
    data = _read_json(ann)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UtaBenchError(f"{ann}: not a Karpathy split file (no 'images' list)")
    rels, caps = [], []
    for im in data["images"]:
        if im.get("split") != split:
            continue
        try:
            rel = f"{im['filepath']}/{im['filename']}" if im.get("filepath") else im["filename"]
            sents = [s["raw"] for s in im["sentences"]]
        except (KeyError, TypeError) as e:
            raise UtaBenchError(f"{ann}: image entry lacks {e}; expected filename and sentences[].raw") from None
        rels.append(rel)
        caps.append(sents)
    if not rels:
        raise UtaBenchError(f"{ann}: no images with split {split!r}")
    # filepath-relative first, then bare file names inside the usual image folders
    dirs = list(dict.fromkeys(["", *image_dirs]))
    files = []
    for rel in rels:
        p = _find_image(root, dirs, rel) or _find_image(root, dirs, Path(rel).name)
        files.append(str(p) if p else None)
    missing = [r for r, f in zip(rels, files) if f is None]
    if missing:
        raise NotFoundError(f"{len(missing)} images of {ann.name} are missing, e.g. {missing[0]} "
                            f"(looked in {', '.join(str(root / d) for d in dirs)})")
    return RetrievalListing(root, files, caps, "karpathy_json", str(ann))


def load_coco_captions(ann: Path, root: Path, image_dirs: list[str]) -> RetrievalListing:
    data = _read_json(ann)
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise UtaBenchError(f"{ann}: not a COCO caption file (needs 'images' and 'annotations')")
    by_img = defaultdict(list)
    for a in data["annotations"]:
        by_img[a["image_id"]].append(a["caption"])
    images = {im["id"]: im["file_name"] for im in data["images"]}
    ids = sorted(images)
    files = _resolve_images(root, [images[i] for i in ids], image_dirs, ann)
    return RetrievalListing(root, files, [by_img[i] for i in ids], "coco_json", str(ann))


def load_flickr_txt(ann: Path, root: Path, image_dirs: list[str]) -> RetrievalListing:
    caps: dict[str, list[str]] = {}
    lines = ann.read_text(encoding="utf-8").splitlines()[1:]
    for n, line in enumerate(lines, start=2):
        line = line.strip()
        if not line:
            continue
        if ".jpg," not in line:
            raise UtaBenchError(f"{ann}:{n}: expected '<image>.jpg,<caption>'")
        img, cap = line.split(".jpg,", 1)
        caps.setdefault(img + ".jpg", []).append(cap)
    rels = list(caps)
    files = _resolve_images(root, rels, image_dirs, ann)
    return RetrievalListing(root, files, [caps[r] for r in rels], "flickr_txt", str(ann))


def _read_json(p: Path):
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UtaBenchError(f"{p}: not valid JSON ({e})") from None


def load_retrieval(root: Path, annotations: list[str], image_dirs: list[str], split: str = "test"):
    """The first annotation file of ``annotations`` found under ``root``, parsed by its kind."""
    for name in annotations:
        ann = root / name
        if not ann.is_file():
            continue
        if name.endswith(".txt"):
            return load_flickr_txt(ann, root, image_dirs)
        data_head = ann.read_text(encoding="utf-8")[:4096]
        if '"sentences"' in data_head or Path(name).name.startswith("dataset_"):
            return load_karpathy(ann, root, image_dirs, split)
        return load_coco_captions(ann, root, image_dirs)
    return None
