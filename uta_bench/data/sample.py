"""A small classification task built from photos that scikit-image ships (no downloads).

Each class is one photo; samples are deterministic crops/flips of it, written as a torchvision
ImageFolder (``<root>/<class_dir>/*.jpg``) plus ``classnames.txt`` (one prompt name per class dir).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# class dir -> (skimage.data function, prompt class name)
SAMPLE_CLASSES = {
    "astronaut": ("astronaut", "astronaut"),
    "cat": ("chelsea", "cat"),
    "coffee": ("coffee", "cup of coffee"),
    "rocket": ("rocket", "rocket"),
    "galaxy": ("hubble_deep_field", "galaxy"),
    "retina": ("retina", "retina"),
    "moon": ("moon", "moon"),
    "coins": ("coins", "coins"),
}


def to_rgb(img: np.ndarray) -> np.ndarray:
    """HxW, HxWx3 or HxWx4 array of any dtype -> HxWx3 uint8 (min-max scaled when not uint8)."""
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    if img.dtype != np.uint8:
        img = (255 * (img - img.min()) / max(float(img.max() - img.min()), 1e-8)).astype(np.uint8)
    return img


def make_sample_imagefolder(root: str | Path, per_class: int = 3, seed: int = 0, size: int = 160) -> Path:
    """Write the sample task under ``root`` (idempotent); returns ``root``."""
    from PIL import Image

    from uta_bench.optional import require

    skimage_data = require("skimage.data", "the sample photos task")

    root = Path(root)
    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{per_class}:{seed}:{size}":
        return root
    rng = np.random.default_rng(seed)
    names = []
    for cls, (fn, prompt) in SAMPLE_CLASSES.items():
        img = Image.fromarray(to_rgb(getattr(skimage_data, fn)()))
        (root / cls).mkdir(parents=True, exist_ok=True)
        w, h = img.size
        for i in range(per_class):
            s = rng.uniform(0.6, 1.0)
            cw, ch = int(w * s), int(h * s)
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((size, size), Image.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(root / cls / f"{cls}_{i:03d}.jpg", quality=92)
        names.append(prompt)
    (root / "classnames.txt").write_text("\n".join(names) + "\n")
    done.write_text(f"{per_class}:{seed}:{size}")
    return root
