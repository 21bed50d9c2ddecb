"""A small instance-segmentation set in the real COCO / LVIS v1 on-disk formats, generated offline.

Backgrounds are photos that scikit-image ships; objects are Tux Paint stamps (Debian package
``tuxpaint-stamps-default``: RGBA PNGs) pasted at random scales/positions. Each object's mask is its alpha
channel (> 127) minus whatever is pasted later on top of it, so boxes, masks and areas are exact.

Layout (mirrors COCO / LVIS v1, so mmdet's CocoDataset / LVISV1Dataset read it unchanged)::

    root/train2017/*.jpg  root/val2017/*.jpg
    root/annotations/instances_{train,val}2017.json    COCO (RLE masks, iscrowd=0)
    root/annotations/lvis_v1_{train,val}.json          LVIS v1 (coco_url, neg/not-exhaustive ids,
                                                       categories with frequency r/c/f + image_count)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uta_bench.errors import UtaBenchError

STAMP_DIRS = (Path("/usr/share/tuxpaint/stamps"), Path("/usr/local/share/tuxpaint/stamps"))
# category name -> stamp file (relative to the stamps dir); sampling weight makes LVIS frequency groups differ
STAMPS = {
    "koala": ("animals/marsupials/koala.png", 6.0),
    "bee": ("animals/insects/bee.png", 5.0),
    "kangaroo": ("animals/marsupials/kangaroo.png", 3.0),
    "mantis": ("animals/insects/mantis.png", 2.0),
    "hornet": ("animals/insects/hornet.png", 1.0),
    "fly": ("animals/insects/fly.png", 0.4),
}
BACKGROUNDS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def stamps_dir() -> Path:
    for d in STAMP_DIRS:
        if (d / STAMPS["koala"][0]).is_file():
            return d
    raise UtaBenchError("Tux Paint stamps not found; install them with `apt-get install tuxpaint-stamps-default`")


def _load_stamp(path: Path):
    from PIL import Image

    im = Image.open(path).convert("RGBA")
    box = im.getbbox()  # crop to the non-transparent part
    return im.crop(box) if box else im


def _background(name: str, size: int) -> np.ndarray:
    import skimage.data
    from PIL import Image

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.asarray(Image.fromarray(img[..., :3].astype(np.uint8)).resize((size, size), Image.BILINEAR)).copy()


def _compose(rng, bg: np.ndarray, stamps: dict, names: list[str], weights: np.ndarray, max_objects: int):
    """Paste 1..max_objects stamps; returns image and [(name, bool mask)] with occlusion applied."""
    from PIL import Image

    H, W = bg.shape[:2]
    img = bg.copy()
    objs: list[tuple[str, np.ndarray]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        name = names[int(rng.choice(len(names), p=weights))]
        st = stamps[name]
        scale = rng.uniform(0.25, 0.5) * min(H, W) / max(st.size)
        w, h = max(8, int(st.size[0] * scale)), max(8, int(st.size[1] * scale))
        st = st.resize((w, h), Image.BILINEAR)
        if rng.random() < 0.5:
            st = st.transpose(Image.FLIP_LEFT_RIGHT)
        x0, y0 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        arr = np.asarray(st).astype(np.float32)
        alpha = arr[..., 3:4] / 255.0
        region = img[y0:y0 + h, x0:x0 + w].astype(np.float32)
        img[y0:y0 + h, x0:x0 + w] = (alpha * arr[..., :3] + (1 - alpha) * region).round().astype(np.uint8)
        mask = np.zeros((H, W), dtype=bool)
        mask[y0:y0 + h, x0:x0 + w] = arr[..., 3] > 127
        for i, (n, m) in enumerate(objs):  # the new stamp occludes earlier ones
            objs[i] = (n, m & ~mask)
        objs.append((name, mask))
    return img, [(n, m) for n, m in objs if m.sum() >= 16]


def _ann(mask: np.ndarray, ann_id: int, img_id: int, cat_id: int) -> dict:
    from pycocotools import mask as mask_utils

    ys, xs = np.nonzero(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    x0, y0 = int(xs.min()), int(ys.min())
    return {"id": ann_id, "image_id": img_id, "category_id": cat_id, "iscrowd": 0, "segmentation": rle,
            "area": int(mask.sum()), "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]}


def make_sample_coco(root: str | Path, n_train: int = 16, n_val: int = 8, size: int = 256, seed: int = 0,
                     max_objects: int = 3) -> Path:
    """Write the COCO + LVIS-style sample set under ``root`` (idempotent); returns ``root``."""
    from PIL import Image

    root = Path(root)
    marker = root / "annotations" / "lvis_v1_val.json"
    if marker.is_file():
        return root
    sdir = stamps_dir()
    stamps = {n: _load_stamp(sdir / f) for n, (f, _) in STAMPS.items()}
    names = list(STAMPS)
    weights = np.array([STAMPS[n][1] for n in names])
    weights = weights / weights.sum()
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    rng = np.random.default_rng(seed)
    splits = {}
    img_id = ann_id = 0
    for split, n in (("train2017", n_train), ("val2017", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for k in range(n):
            img_id += 1
            bg = _background(BACKGROUNDS[k % len(BACKGROUNDS)], size)
            img, objs = _compose(rng, bg, stamps, names, weights, max_objects)
            fname = f"{img_id:012d}.jpg"
            Image.fromarray(img).save(root / split / fname, quality=95)
            images.append({"id": img_id, "file_name": fname, "height": size, "width": size})
            for name, mask in objs:
                ann_id += 1
                anns.append(_ann(mask, ann_id, img_id, cat_id[name]))
        splits[split] = (images, anns)
    _write_coco(root, splits, names, cat_id)
    _write_lvis(root, splits, names, cat_id)
    return root


def _write_coco(root: Path, splits: dict, names: list[str], cat_id: dict) -> None:
    from uta_bench.paths import atomic_write_text

    cats = [{"id": cat_id[n], "name": n, "supercategory": "stamp"} for n in names]
    for split, (images, anns) in splits.items():
        doc = {"info": {"description": "uta-bench sample (skimage photos + Tux Paint stamps)"},
               "licenses": [], "images": images, "annotations": anns, "categories": cats}
        atomic_write_text(root / "annotations" / f"instances_{split}.json", json.dumps(doc))


def frequency_groups(train_image_counts: dict[int, int]) -> dict[int, str]:
    """LVIS groups by training-image count (r: 1-10, c: 11-100, f: >100), with the thresholds scaled to a small
    set: the rarest third of categories -> r, the middle third -> c, the rest -> f (at least one of each)."""
    order = sorted(train_image_counts, key=lambda c: (train_image_counts[c], c))
    n = len(order)
    k = max(1, n // 3)
    return {c: ("r" if i < k else "c" if i < 2 * k else "f") for i, c in enumerate(order)}


def _write_lvis(root: Path, splits: dict, names: list[str], cat_id: dict) -> None:
    from uta_bench.paths import atomic_write_text

    train_images, train_anns = splits["train2017"]
    img_count = {c: len({a["image_id"] for a in train_anns if a["category_id"] == c}) for c in cat_id.values()}
    inst_count = {c: sum(a["category_id"] == c for a in train_anns) for c in cat_id.values()}
    freq = frequency_groups(img_count)
    cats = [{"id": cat_id[n], "name": n, "synset": f"{n}.n.01", "synonyms": [n], "def": f"a {n}",
             "frequency": freq[cat_id[n]], "image_count": img_count[cat_id[n]],
             "instance_count": inst_count[cat_id[n]]} for n in names]
    all_cats = set(cat_id.values())
    for split, (images, anns) in splits.items():
        lv_images = []
        for im in images:
            present = {a["category_id"] for a in anns if a["image_id"] == im["id"]}
            lv_images.append({"id": im["id"], "height": im["height"], "width": im["width"],
                              "coco_url": f"http://images.cocodataset.org/{split}/{im['file_name']}",
                              "file_name": f"{split}/{im['file_name']}",
                              # every stamp is annotated, so all absent categories are verified negatives
                              "neg_category_ids": sorted(all_cats - present), "not_exhaustive_category_ids": []})
        lv_anns = [{k: v for k, v in a.items() if k != "iscrowd"} for a in anns]
        doc = {"info": {"description": "uta-bench LVIS-style sample"}, "licenses": [], "images": lv_images,
               "annotations": lv_anns, "categories": cats}
        name = "lvis_v1_train.json" if split == "train2017" else "lvis_v1_val.json"
        atomic_write_text(root / "annotations" / name, json.dumps(doc))
