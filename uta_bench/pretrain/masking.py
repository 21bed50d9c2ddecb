"""Patch masks for pre-training: block-wise (BEiT), random, and UTA's reversed block-wise.

Every mask has exactly ``round(ratio * N)`` masked patches, so every sample of a batch keeps the same
number of tokens (UTA drops masked tokens and needs a rectangular batch). ``True`` = masked.

Masks are a pure function of ``(seed, step)``: :meth:`MaskGenerator.batch` draws the whole *global*
batch of a step from its own generator, so a resumed run and a run on more processes (each taking
its slice of the global batch) see exactly the same masks as an uninterrupted single-process run.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from uta_bench.errors import UtaBenchError

MASK_KINDS = ("block", "random", "block_reversed")


def num_masked(num_patches: int, ratio: float) -> int:
    if not 0.0 <= ratio < 1.0:
        raise UtaBenchError(f"mask ratio must be in [0, 1), got {ratio}")
    return int(round(ratio * num_patches))


def block_mask(grid: tuple[int, int], n_mask: int, rng: np.random.Generator, min_block: int = 16,
               min_aspect: float = 0.3) -> np.ndarray:
    """BEiT block-wise masking with exactly ``n_mask`` patches masked.

    Blocks of log-uniform aspect ratio and uniform area (``min_block`` .. what is still missing) are
    placed at random until the target is met; a block that would overshoot is rejected (as in BEiT).
    If placement stalls (tiny grids), the remainder is masked one random patch at a time.
    """
    h, w = grid
    mask = np.zeros((h, w), dtype=bool)
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    count, stalls = 0, 0
    while count < n_mask and stalls < 10:
        missing = n_mask - count
        lo = min(min_block, missing)
        added = 0
        for _ in range(10):  # attempts per block, as in BEiT's generator
            area = rng.uniform(lo, missing)
            aspect = math.exp(rng.uniform(*log_aspect))
            bh = int(round(math.sqrt(area * aspect)))
            bw = int(round(math.sqrt(area / aspect)))
            if 0 < bh <= h and 0 < bw <= w:
                top = int(rng.integers(0, h - bh + 1))
                left = int(rng.integers(0, w - bw + 1))
                block = mask[top:top + bh, left:left + bw]
                new = int(bh * bw - block.sum())
                if 0 < new <= missing:
                    block[:] = True
                    added = new
                    break
        count += added
        stalls = stalls + 1 if added == 0 else 0
    if count < n_mask:  # top up so the ratio is exact
        free = np.flatnonzero(~mask.ravel())
        mask.ravel()[rng.choice(free, n_mask - count, replace=False)] = True
    return mask.ravel()


def random_mask(num_patches: int, n_mask: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(num_patches, dtype=bool)
    mask[rng.choice(num_patches, n_mask, replace=False)] = True
    return mask


def one_mask(kind: str, grid: tuple[int, int], ratio: float, rng: np.random.Generator) -> np.ndarray:
    n = grid[0] * grid[1]
    k = num_masked(n, ratio)
    if kind == "random":
        return random_mask(n, k, rng)
    if kind == "block":
        return block_mask(grid, k, rng)
    if kind == "block_reversed":
        # Block mask, inverted with probability 0.5. To keep the ratio exact when inverting, the
        # block mask that gets inverted is drawn at ratio 1 - r (at r = 0.5, the paper's default
        # for L, this is literally "invert the mask").
        if rng.random() < 0.5:
            return ~block_mask(grid, n - k, rng)
        return block_mask(grid, k, rng)
    raise UtaBenchError(f"unknown mask kind {kind!r}; use one of {', '.join(MASK_KINDS)}")


class MaskGenerator:
    """Seeded, batched masks: ``gen.batch(step, size)`` -> bool tensor ``[size, H*W]``."""

    def __init__(self, kind: str, grid: tuple[int, int] | int, ratio: float, seed: int = 0):
        if kind not in MASK_KINDS:
            raise UtaBenchError(f"unknown mask kind {kind!r}; use one of {', '.join(MASK_KINDS)}")
        self.kind = kind
        self.grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        self.num_patches = self.grid[0] * self.grid[1]
        self.ratio = ratio
        self.n_mask = num_masked(self.num_patches, ratio)
        self.seed = seed

    def batch(self, step: int, size: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, step, 0x6D61736B])
        masks = np.stack([one_mask(self.kind, self.grid, self.ratio, rng) for _ in range(size)])
        return torch.from_numpy(masks)


def mask_probability(kind: str, grid: int | tuple[int, int], ratio: float, n: int = 5000,
                     seed: int = 0, progress: bool = False) -> np.ndarray:
    """Per-location masking probability over ``n`` masks (the paper's Fig. 3), shape ``grid``."""
    gen = MaskGenerator(kind, grid, ratio, seed)
    total = np.zeros(gen.num_patches)
    chunk = 500
    from uta_bench.progress import progress_bar

    with progress_bar(progress, n, f"masks {kind}", "mask") as advance:
        for step, start in enumerate(range(0, n, chunk)):
            size = min(chunk, n - start)
            total += gen.batch(step, size).numpy().sum(0)
            advance(size)
    return (total / n).reshape(gen.grid)
