"""A small fine-tuning dataset in ImageFolder layout: ``<root>/train/<class>/*.jpg`` and ``<root>/val/...``.

Built from :func:`uta_bench.data.sample.make_sample_imagefolder` (scikit-image photos, random crops and
flips); train and val are disjoint crops, so held-out accuracy measures generalisation to new crops.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from uta_bench.data.sample import SAMPLE_CLASSES, make_sample_imagefolder


def make_finetune_sample(root: str | Path, classes: int = 4, train_per_class: int = 12, val_per_class: int = 6,
                         seed: int = 0, size: int = 96) -> Path:
    """Write (idempotently) ``root/train`` and ``root/val`` with the first ``classes`` sample classes."""
    root = Path(root)
    stamp = f"{classes}:{train_per_class}:{val_per_class}:{seed}:{size}"
    done = root / ".complete"
    if done.is_file() and done.read_text() == stamp:
        return root
    names = list(SAMPLE_CLASSES)[:classes]
    tmp = root / ".all"
    shutil.rmtree(tmp, ignore_errors=True)
    make_sample_imagefolder(tmp, per_class=train_per_class + val_per_class, seed=seed, size=size)
    for split in ("train", "val"):
        shutil.rmtree(root / split, ignore_errors=True)
    for cls in names:
        files = sorted((tmp / cls).glob("*.jpg"))
        for i, f in enumerate(files):
            split = "train" if i < train_per_class else "val"
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, root / split / cls / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    done.write_text(stamp)
    return root
