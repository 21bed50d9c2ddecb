"""ADE20K (ADEChallengeData2016) layout: checking a real copy, and writing a small generated one.

Layout (as released and as mmseg's ``ADE20KDataset`` reads it)::

    <root>/images/{training,validation}/ADE_*.jpg
    <root>/annotations/{training,validation}/ADE_*.png   # uint8, 0 = other, 1..150 = classes

With ``reduce_zero_label`` the loader maps 0 -> 255 (ignored) and k -> k - 1, giving 150 classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from uta_bench.errors import NotFoundError, UtaBenchError

EXPECTED = {"training": 20210, "validation": 2000}     # ADEChallengeData2016 image counts


def check_ade_root(root: str | Path, splits=("training", "validation"), sample: int = 3) -> dict[str, int]:
    """Image counts per split; clear errors for a wrong layout (checked before any Runner starts)."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"ADE20K root {root} does not exist; pass --data-root <.../ADEChallengeData2016>")
    counts = {}
    for split in splits:
        img_dir, ann_dir = root / "images" / split, root / "annotations" / split
        for d in (img_dir, ann_dir):
            if not d.is_dir():
                raise NotFoundError(f"{d} is missing; an ADE20K root holds images/{split} and annotations/{split}")
        imgs = sorted(img_dir.glob("*.jpg"))
        if not imgs:
            raise UtaBenchError(f"{img_dir} has no .jpg images")
        missing = [p.stem for p in imgs if not (ann_dir / f"{p.stem}.png").is_file()]
        if missing:
            raise UtaBenchError(f"{len(missing)} image(s) in {img_dir} have no label map in {ann_dir} "
                                f"(first: {missing[0]}.png)")
        for p in imgs[:sample]:
            lab = np.asarray(Image.open(ann_dir / f"{p.stem}.png"))
            if lab.ndim != 2 or lab.max() > 150:
                raise UtaBenchError(f"{ann_dir / (p.stem + '.png')} is not an ADE20K label map (needs a single "
                                    f"channel with values 0..150; got shape {lab.shape}, max {lab.max()})")
        counts[split] = len(imgs)
    return counts


def _photos(size: int) -> list[np.ndarray]:
    import skimage.data
    from PIL import Image

    from uta_bench.data.sample import SAMPLE_CLASSES, to_rgb

    out = []
    for fn, _ in SAMPLE_CLASSES.values():
        img = Image.fromarray(to_rgb(getattr(skimage.data, fn)())).resize((size, size), Image.BICUBIC)
        out.append(np.asarray(img))
    return out


# label ids (1-based, ADE20K objectInfo150 order) used by the generated scenes
SCENE_LABELS = {"wall": 1, "sky": 3, "person": 13, "car": 21, "cat": 103, "clock": 149}


def make_ade20k_sample(root: str | Path, n_train: int = 8, n_val: int = 4, size: int = 96, seed: int = 0) -> Path:
    """Write a small ADEChallengeData2016-layout dataset (idempotent); returns ``root``.

    Each scene: a background photo texture labelled "wall" or "sky", 2-3 rectangles/ellipses filled
    with other photo textures and labelled with their class, a border strip labelled 0 ("other").
    Images are JPEG, label maps single-channel PNG, exactly as released.
    """
    from PIL import Image

    root = Path(root)
    stamp = f"{n_train}:{n_val}:{size}:{seed}"
    done = root / ".complete"
    if done.is_file() and done.read_text() == stamp:
        return root
    rng = np.random.default_rng(seed)
    photos = _photos(size * 2)
    fg = [("person", 0), ("car", 3), ("cat", 1), ("clock", 2)]      # (label, photo index)
    yy, xx = np.mgrid[0:size, 0:size]
    for split, n in (("training", n_train), ("validation", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            bg_name, bg_photo = (("wall", 5), ("sky", 4))[int(rng.integers(2))]
            def tex(k):
                x0, y0 = rng.integers(0, size, 2)
                return photos[k][y0:y0 + size, x0:x0 + size]
            img = tex(bg_photo).copy()
            lab = np.full((size, size), SCENE_LABELS[bg_name], np.uint8)
            for j in rng.choice(len(fg), size=int(rng.integers(2, 4)), replace=False):
                name, k = fg[j]
                h, w = rng.integers(size // 4, size // 2, 2)
                y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
                if rng.random() < 0.5:
                    m = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
                else:
                    m = ((yy - y0 - h / 2) / (h / 2)) ** 2 + ((xx - x0 - w / 2) / (w / 2)) ** 2 <= 1
                img[m] = tex(k)[m]
                lab[m] = SCENE_LABELS[name]
            lab[:, : size // 16] = 0                                     # "other": ignored in training/eval
            stem = f"ADE_{'train' if split == 'training' else 'val'}_{i + 1:08d}"
            Image.fromarray(img).save(root / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(lab).save(root / "annotations" / split / f"{stem}.png")
    done.write_text(stamp)
    return root
