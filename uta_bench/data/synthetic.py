"""Generate small datasets in the real on-disk formats (tests and benchmarks; no downloads).

Images are smooth random colour fields (distinct per sample) written as JPEG/PNG. Layouts match
what the real datasets / clip_benchmark use: ImageFolder synset dirs, ImageNetV2 numbered dirs,
ObjectNet 1.0 (images + the four mapping files clip_benchmark reads), clip_benchmark webdataset
tars (classification and retrieval), Karpathy split JSON, COCO caption JSON, Flickr txt.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

WORDS = ("a dog", "two cats", "a red car", "people walking", "a small boat", "green trees", "a plate of food",
         "a man riding a bike", "children playing", "an old building", "a bird on a branch", "snow on a hill")


def random_image(rng: np.random.Generator, size: int = 72):
    from PIL import Image

    low = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 21, size=(size, size, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _save(img, path: Path, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)


def _bytes(img, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_imagefolder(root, class_dirs, per_class=2, seed=0, size=72, ext="JPEG") -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    for d in class_dirs:
        for i in range(per_class):
            _save(random_image(rng, size), root / d / f"{d}_{i:04d}.{ext}")
    return root


def make_imagenetv2(root, class_indices, per_class=2, seed=0, size=72) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in class_indices:
        for i in range(per_class):
            _save(random_image(rng, size), root / str(c) / f"{rng.integers(1 << 40):x}.jpeg")
    return root


def make_objectnet(root, n_mapped=5, n_unmapped=2, per_class=2, seed=0, size=72) -> Path:
    """ObjectNet 1.0 layout: objectnet-1.0/images/<folder>/*.png + mappings/ (copied next to it too)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    folders = {f"folder_{i:03d}": f"Object Label {i}" for i in range(n_mapped + n_unmapped)}
    in_names = [f"imagenet class {i}" for i in range(1000)]
    to_in1k = {folders[f"folder_{i:03d}"]: "; ".join(in_names[3 * i + j] for j in range(1 + i % 2))
               for i in range(n_mapped)}
    maps = {"folder_to_objectnet_label.json": json.dumps(folders),
            "objectnet_to_imagenet_1k.json": json.dumps(to_in1k),
            "pytorch_to_imagenet_2012_id.json": json.dumps({str(i): i for i in range(1000)}),
            "imagenet_to_label_2012_v2": "\n".join(in_names) + "\n"}
    for d in (root / "objectnet-1.0" / "mappings", root):
        d.mkdir(parents=True, exist_ok=True)
        for name, text in maps.items():
            (d / name).write_text(text)
    for f in folders:
        for i in range(per_class):
            _save(random_image(rng, size), root / "objectnet-1.0" / "images" / f / f"{i:04d}.png", "PNG")
    return root


def _write_wds(root: Path, samples, meta: dict, maxcount: int, split: str = "test") -> Path:
    import webdataset as wds

    (root / split).mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(root / split / "%d.tar"), maxcount=maxcount, verbose=0) as sink:
        for s in samples:
            sink.write(s)
        nshards = sink.shard
    (root / split / "nshards.txt").write_text(f"{nshards}\n")
    for name, text in meta.items():
        (root / name).write_text(text)
    return root


def make_wds_classification(root, labels, classnames, templates=None, seed=0, size=72, maxcount=5) -> Path:
    rng = np.random.default_rng(seed)
    samples = ({"__key__": f"s{i:07d}", "jpg": _bytes(random_image(rng, size)), "cls": int(lab)}
               for i, lab in enumerate(labels))
    meta = {"classnames.txt": "\n".join(classnames) + "\n"}
    if templates:
        meta["zeroshot_classification_templates.txt"] = "\n".join(templates) + "\n"
    return _write_wds(Path(root), samples, meta, maxcount)


def captions_for(n_images, rng, per_image=(5,)):
    out = []
    for i in range(n_images):
        k = int(per_image[i % len(per_image)])
        out.append([f"{WORDS[rng.integers(len(WORDS))]} next to {WORDS[rng.integers(len(WORDS))]} number {i}-{j}"
                    for j in range(k)])
    return out


def make_wds_retrieval(root, n_images=6, per_image=(5,), seed=0, size=72, maxcount=4) -> Path:
    rng = np.random.default_rng(seed)
    caps = captions_for(n_images, rng, per_image)
    samples = ({"__key__": f"s{i:07d}", "webp": _bytes(random_image(rng, size), "WEBP"), "txt": "\n".join(c)}
               for i, c in enumerate(caps))
    return _write_wds(Path(root), samples, {"dataset_type.txt": "retrieval\n"}, maxcount)


def make_karpathy(root, n_test=6, n_other=2, per_image=(5,), seed=0, size=72, coco_style=True,
                  image_dir="val2014", name="dataset_coco.json") -> Path:
    """Karpathy split file: test images + some train/val ones that must be ignored."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    caps = captions_for(n_test + n_other, rng, per_image)
    images = []
    for i, c in enumerate(caps):
        fname = f"COCO_val2014_{i:012d}.jpg" if coco_style else f"{1000 + i}.jpg"
        _save(random_image(rng, size), root / image_dir / fname)
        entry = {"filename": fname, "split": "test" if i < n_test else ("train" if i % 2 else "val"),
                 "sentences": [{"raw": s, "tokens": s.split()} for s in c], "imgid": i}
        if coco_style:
            entry["filepath"] = image_dir
        images.append(entry)
    (root / name).write_text(json.dumps({"images": images, "dataset": "coco" if coco_style else "flickr30k"}))
    return root


def make_coco_json(root, n_images=6, per_image=(5, 6), seed=0, size=72) -> Path:
    """clip_benchmark's coco_test_karpathy.json (COCO caption format) + val2014/ images."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    caps = captions_for(n_images, rng, per_image)
    ids = rng.permutation(np.arange(100, 100 + n_images)).tolist()   # ids not in file order
    images, anns = [], []
    for img_id, c in zip(ids, caps):
        fname = f"COCO_val2014_{img_id:012d}.jpg"
        _save(random_image(rng, size), root / "val2014" / fname)
        images.append({"id": img_id, "file_name": fname})
        anns += [{"id": len(anns) + j, "image_id": img_id, "caption": s} for j, s in enumerate(c)]
    (root / "coco_test_karpathy.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return root


def make_flickr_txt(root, n_images=6, per_image=(5,), seed=0, size=72) -> Path:
    """clip_benchmark's flickr30k_test_karpathy.txt + the images next to it."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    caps = captions_for(n_images, rng, per_image)
    lines = ["image,caption"]
    for i, c in enumerate(caps):
        fname = f"{5000 + i}.jpg"
        _save(random_image(rng, size), root / fname)
        lines += [f"{fname},{s}, with a comma" for s in c]
    (root / "flickr30k_test_karpathy.txt").write_text("\n".join(lines) + "\n")
    return root
