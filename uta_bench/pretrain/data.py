"""Pre-training images: ImageFolder trees or webdataset tar shards, with a deterministic order.

The sample order is a pure function of ``(seed, epoch)`` and augmentation of ``(seed, epoch, index)``,
so the "data position" of a run is just its step count: a resumed run, or a run split over ``world``
processes (each takes its contiguous slice of every global batch), reads exactly the samples an
uninterrupted single-process run reads.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from uta_bench.errors import NotFoundError, UtaBenchError

IMG_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm")


def list_image_files(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"pre-training data folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_EXT)
    if not files:
        raise UtaBenchError(f"{root} holds no images ({', '.join(IMG_EXT)}); point 'data' at an ImageFolder")
    return files


def expand_shards(spec: str) -> list[Path]:
    """``dir/shard-{000..009}.tar`` (brace expansion) or a directory of ``*.tar``."""
    p = Path(spec)
    if p.is_dir():
        shards = sorted(p.glob("*.tar"))
    else:
        from braceexpand import braceexpand

        shards = [Path(s) for s in braceexpand(spec)]
    missing = [s for s in shards if not s.is_file()]
    if not shards or missing:
        raise NotFoundError(f"webdataset shards {spec!r}: " + (f"{missing[0]} is missing" if missing
                                                                else "no .tar files found"))
    return shards


class TarImages:
    """Random access to the images of webdataset shards (one image per key; first image ext wins)."""

    def __init__(self, spec: str):
        self.refs: list[tuple[Path, str]] = []
        for shard in expand_shards(spec):
            seen = set()
            with tarfile.open(shard) as tf:
                for m in tf.getmembers():
                    key, _, ext = m.name.rpartition(".")
                    if m.isfile() and f".{ext.lower()}" in IMG_EXT and key not in seen:
                        seen.add(key)
                        self.refs.append((shard, m.name))
        if not self.refs:
            raise UtaBenchError(f"webdataset shards {spec!r} hold no images")
        self._open: dict[Path, tarfile.TarFile] = {}

    def __len__(self):
        return len(self.refs)

    def read(self, i: int) -> bytes:
        shard, name = self.refs[i]
        tf = self._open.get(shard)
        if tf is None:
            tf = self._open[shard] = tarfile.open(shard)
        return tf.extractfile(name).read()

    def __getstate__(self):  # DataLoader workers open their own handles
        return {"refs": self.refs, "_open": {}}


class PretrainImages(Dataset):
    """Items are ``(epoch, index)`` pairs -> ``(image tensor, index)``."""

    def __init__(self, source: str | Path, fmt: str, image_size: int, mean, std,
                 crop_scale=(0.4, 1.0), train: bool = True, seed: int = 0):
        self.fmt = fmt
        if fmt == "imagefolder":
            self.files = list_image_files(source)
            self.tars = None
        elif fmt == "webdataset":
            self.files, self.tars = None, TarImages(str(source))
        else:
            raise UtaBenchError(f"unknown data format {fmt!r}; use imagefolder or webdataset")
        self.size, self.mean, self.std = image_size, torch.tensor(mean), torch.tensor(std)
        self.crop_scale, self.train, self.seed = crop_scale, train, seed

    def __len__(self):
        return len(self.files) if self.files is not None else len(self.tars)

    def _pil(self, i: int):
        from PIL import Image

        if self.files is not None:
            return Image.open(self.files[i]).convert("RGB")
        return Image.open(io.BytesIO(self.tars.read(i))).convert("RGB")

    def __getitem__(self, item):
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode, RandomResizedCrop

        epoch, i = item if isinstance(item, tuple) else (0, item)
        img = self._pil(i)
        if self.train:
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0]))
            state = torch.random.get_rng_state()
            torch.random.set_rng_state(g.get_state())   # RandomResizedCrop.get_params draws from torch
            top, left, h, w = RandomResizedCrop.get_params(img, list(self.crop_scale), [3 / 4, 4 / 3])
            flip = bool(torch.rand(()) < 0.5)
            torch.random.set_rng_state(state)
            img = TF.resized_crop(img, top, left, h, w, [self.size, self.size],
                                  interpolation=InterpolationMode.BICUBIC, antialias=True)
            if flip:
                img = TF.hflip(img)
        else:
            img = TF.center_crop(TF.resize(img, self.size, interpolation=InterpolationMode.BICUBIC,
                                           antialias=True), self.size)
        x = TF.to_tensor(img)
        return (x - self.mean[:, None, None]) / self.std[:, None, None], i


class TensorImages(Dataset):
    """Pre-normalised images held in memory (the demo): ``(epoch, index)`` -> ``(image, index)``."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, item):
        _, i = item if isinstance(item, tuple) else (0, item)
        return self.images[i], i


class GlobalBatches(torch.utils.data.Sampler):
    """Batch sampler: this rank's slice of global batch ``step`` for ``step in [start, total)``.

    Epoch ``e`` visits a permutation seeded by ``(seed, e)``; global batches are consecutive chunks of
    the concatenated epochs, so a batch may span an epoch boundary and no sample is dropped.
    """

    def __init__(self, n: int, global_batch: int, total_steps: int, start_step: int = 0, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if global_batch % world:
            raise UtaBenchError(f"global batch {global_batch} is not divisible by {world} processes")
        self.n, self.gb, self.total, self.start, self.seed = n, global_batch, total_steps, start_step, seed
        self.rank, self.local = rank, global_batch // world
        self._perm_cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            self._perm_cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perm_cache[epoch]

    def batch(self, step: int) -> list[tuple[int, int]]:
        first = step * self.gb + self.rank * self.local
        out = []
        for pos in range(first, first + self.local):
            epoch, j = divmod(pos, self.n)
            out.append((epoch, int(self._perm(epoch)[j])))
        return out

    def __iter__(self):
        for step in range(self.start, self.total):
            yield self.batch(step)

    def __len__(self):
        return max(0, self.total - self.start)

    def epoch_of(self, step: int) -> float:
        return step * self.gb / self.n
