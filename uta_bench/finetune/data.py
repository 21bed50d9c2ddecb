"""Training data for fine-tuning: ImageFolder + timm's train transform, reproducible per sample.

Every sample's augmentation (RandomResizedCrop, flip, RandAugment, random erasing) draws from RNGs
seeded by ``(seed, epoch, index)``, and the order comes from ``DistributedSampler(seed, epoch)``, so a
run resumed mid-epoch sees exactly the batches the uninterrupted run would have seen, with any number
of data-loader workers.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def derive_seed(*parts) -> int:
    """A 32-bit seed from any tuple of ints/strings (stable across processes and runs)."""
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:4], "little")


class rng_scope:
    """Seed python/numpy/torch RNGs for a block and restore the previous states afterwards."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self.states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        torch.random.set_rng_state(self.states[2])
        return False


def train_transform(cfg, image_size: int, mean, std):
    """timm's training transform with the recipe's augmentation."""
    from timm.data import create_transform

    return create_transform(
        input_size=image_size, is_training=True, scale=tuple(cfg.scale), hflip=0.5,
        color_jitter=None if cfg.auto_augment else 0.4, auto_augment=cfg.auto_augment,
        interpolation=cfg.interpolation, mean=tuple(mean), std=tuple(std), re_prob=cfg.re_prob,
        re_mode="pixel", re_count=1)


class SeededDataset(Dataset):
    """Wrap a dataset of (PIL image, target); apply ``transform`` under a per-(epoch, index) seed."""

    def __init__(self, base, transform, seed: int = 0):
        self.base, self.transform, self.seed, self.epoch = base, transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        img, target = self.base[index]
        with rng_scope(derive_seed("aug", self.seed, self.epoch, index)):
            return self.transform(img), target


class EpochIndices(Sampler):
    """``DistributedSampler`` order for one epoch (any world size), starting at position ``start``."""

    def __init__(self, dataset, world: int, rank: int, seed: int, epoch: int, start: int = 0):
        from torch.utils.data import DistributedSampler

        s = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        s.set_epoch(epoch)
        self.indices = list(s)[start:]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def batch_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """Seed for the model-side randomness of one micro-batch (mixup/cutmix, drop-path)."""
    return derive_seed("step", seed, step, micro, rank)
