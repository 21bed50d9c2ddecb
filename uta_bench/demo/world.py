"""A procedural captioned image world: coloured shapes on textured backgrounds, fully seeded.

Each image holds one object: ``colour`` x ``shape`` x ``size`` x ``position`` with a caption such as
"a large red triangle at the top left". Zero-shot classes are colour x shape. A fixed set of
colour x shape *compositions* is held out: no training image or caption ever shows them (every colour
and every shape is still seen in other combinations), so zero-shot accuracy on them measures
compositional vision-language alignment rather than memorised caption-image pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230), "yellow": (235, 215, 40),
           "purple": (150, 60, 200), "cyan": (40, 210, 215), "orange": (245, 140, 30), "white": (240, 240, 240)}
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
TEMPLATES = ("a {size} {colour} {shape} at the {pos}.", "a {colour} {shape} at the {pos}.",
             "a {size} {colour} {shape}.", "a {colour} {shape}.", "a photo of a {size} {colour} {shape}.",
             "the {pos} shows a {colour} {shape}.")
CLASS_TEMPLATES = ("a {c}.", "a photo of a {c}.", "a small {c}.", "a large {c}.")


def class_names() -> list[str]:
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def held_out_classes() -> list[int]:
    """12 of 48 compositions, a diagonal pattern: every colour and shape stays seen elsewhere."""
    nc, ns = len(COLOURS), len(SHAPES)
    return [ci * ns + si for ci in range(nc) for si in range(ns) if (ci + si) % 4 == 0]


def seen_classes() -> list[int]:
    held = set(held_out_classes())
    return [k for k in range(len(COLOURS) * len(SHAPES)) if k not in held]


@dataclass
class World:
    images: np.ndarray          # [n, H, W, 3] uint8
    labels: np.ndarray          # [n] class index into class_names()
    captions: list[str]


def _shape_mask(shape: str, yy, xx, cy, cx, r) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy ** 2 + dx ** 2 <= r ** 2
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        return ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r)) | ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r))
    if shape == "ring":
        d = dy ** 2 + dx ** 2
        return (d <= r ** 2) & (d >= (0.55 * r) ** 2)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    raise ValueError(shape)


def render(n: int, classes: list[int], size: int = 32, seed: int = 0) -> World:
    """``n`` images of the given classes (cycled, then shuffled by the seed)."""
    rng = np.random.default_rng([seed, 0x776F726C64])
    names = list(COLOURS)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.array([classes[i % len(classes)] for i in range(n)])
    rng.shuffle(labels)
    captions = []
    for i, k in enumerate(labels):
        colour, shape = names[k // len(SHAPES)], SHAPES[k % len(SHAPES)]
        big = rng.random() < 0.5
        r = size * (rng.uniform(0.22, 0.3) if big else rng.uniform(0.12, 0.18))
        cy, cx = rng.uniform(r, size - r, 2)
        # textured background: dark tint + low-frequency stripes + pixel noise
        tint = rng.uniform(0, 70, 3)
        freq, phase = rng.uniform(0.1, 0.5), rng.uniform(0, 2 * np.pi)
        stripes = 18 * np.sin(freq * (xx * np.cos(phase) + yy * np.sin(phase)))[..., None]
        img = tint + stripes + rng.normal(0, 8, (size, size, 3))
        col = np.array(COLOURS[colour]) * rng.uniform(0.8, 1.0) + rng.normal(0, 6, 3)
        m = _shape_mask(shape, yy, xx, cy, cx, r)
        img[m] = col + rng.normal(0, 6, (int(m.sum()), 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
        pos = ("top" if cy < size / 2 else "bottom") + " " + ("left" if cx < size / 2 else "right")
        t = TEMPLATES[rng.integers(len(TEMPLATES))]
        captions.append(t.format(size="large" if big else "small", colour=colour, shape=shape, pos=pos))
    return World(images, labels, captions)


def to_tensor(images: np.ndarray, mean, std):
    """uint8 ``[n, H, W, 3]`` -> normalised float ``[n, 3, H, W]`` (what the eval transform produces)."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def write_imagefolder(world: World, root, classes: list[int]) -> None:
    """ImageFolder (one folder per class, ``classnames.txt``) of the world's images, as PNG."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    names = class_names()
    order = sorted(classes)  # folder k_<index> sorts in class order (zero-padded)
    for k in order:
        (root / f"c{k:02d}").mkdir(parents=True, exist_ok=True)
    for i, (img, k) in enumerate(zip(world.images, world.labels)):
        Image.fromarray(img).save(root / f"c{k:02d}" / f"{i:05d}.png")
    (root / "classnames.txt").write_text("\n".join(names[k] for k in order) + "\n")
