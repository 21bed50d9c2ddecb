"""Image–text pairs streamed from webdataset tar shards (DataComp's ``KEY.jpg`` / ``KEY.txt`` layout).

Order is a pure function of the seed, and a run's *position* is a small dict, so a resumed run, or a
run on any number of processes, reads exactly the samples of an uninterrupted single-process run:

* ``data_streams`` independent streams; stream ``s`` reads, in epoch ``e``, the shards
  ``perm(seed, e)[s::S]`` one after another, each shard front to back (no shuffle buffer; shards are
  already shuffled by DataComp's writer), then moves on to epoch ``e + 1`` on its own;
* every optimizer step takes ``global_batch / S`` consecutive samples from each stream; process ``r``
  of ``W`` owns the streams ``s % W == r``, so it opens only its own shards (no process reads all data);
* a stream's position is ``[epoch, shard index in its list, samples already taken from that shard]``;
  resuming re-opens that shard and skips that many samples without decoding them;
* augmentation (RandomResizedCrop) is seeded per sample from ``(seed, epoch, shard, offset)``.
"""
from __future__ import annotations

import io
import logging

import numpy as np
import torch

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)


def expand_shards(spec: str) -> list[str]:
    """Shard URLs of ``spec``: a directory of ``*.tar``, brace notation, or ``pipe:``/URL lists."""
    from uta_bench.pretrain.data import expand_shards as local_shards

    if spec.startswith(("pipe:", "http://", "https://", "s3://", "gs://")):
        from braceexpand import braceexpand

        return list(braceexpand(spec))
    return [str(p) for p in local_shards(spec)]


class ImageTextSample:
    """Decode + augment one pair: RGB, RandomResizedCrop(seeded), CLIP normalisation; caption str."""

    def __init__(self, image_size: int, mean, std, crop_scale=(0.9, 1.0), image_key="jpg", text_key="txt"):
        from torchvision import transforms as T

        self.size, self.scale = image_size, tuple(crop_scale)
        self.image_key, self.text_key = image_key, text_key
        self.finish = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        self.T = T

    def __call__(self, sample: dict, seed: int) -> tuple[torch.Tensor, str]:
        from PIL import Image

        key = sample.get("__key__", "?")
        if self.image_key not in sample or self.text_key not in sample:
            raise UtaBenchError(f"sample {key} in {sample.get('__url__')} has no .{self.image_key} / "
                                f".{self.text_key} member; shards must hold image-text pairs (DataComp layout)")
        img = Image.open(io.BytesIO(sample[self.image_key])).convert("RGB")
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)     # CPU only (torch.manual_seed also seeds lazy devices)
            box = self.T.RandomResizedCrop.get_params(img, scale=self.scale, ratio=(3 / 4, 4 / 3))
        img = self.T.functional.resized_crop(img, *box, [self.size, self.size],
                                             interpolation=self.T.InterpolationMode.BICUBIC)
        text = sample[self.text_key]
        return self.finish(img), text.decode("utf-8") if isinstance(text, bytes) else str(text)


class _Stream:
    """One shard stream; ``position`` = [epoch, shard index within this stream's list, offset]."""

    def __init__(self, index: int, n_streams: int, shards: list[str], seed: int, position=None):
        self.index, self.n_streams, self.shards, self.seed = index, n_streams, shards, seed
        self.epoch, self.shard_pos, self.offset = position or (0, 0, 0)
        self._it = None

    def my_shards(self, epoch: int) -> list[int]:
        perm = np.random.default_rng([self.seed, epoch, 0x5348]).permutation(len(self.shards))
        return [int(i) for i in perm[self.index::self.n_streams]]

    def _open(self):
        from webdataset.tariterators import tarfile_samples

        shard = self.shards[self.my_shards(self.epoch)[self.shard_pos]]
        it = tarfile_samples([{"url": shard}])
        for _ in range(self.offset):              # resume: skip what was taken, without decoding
            if next(it, None) is None:
                break
        return it

    def take(self, n: int) -> list[tuple[dict, int]]:
        """Next ``n`` raw samples with their augmentation seeds."""
        out, empty_run = [], 0
        while len(out) < n:
            if self._it is None:
                self._it = self._open()
            sample = next(self._it, None)
            if sample is None:                     # shard done: next shard, or next epoch
                empty_run = empty_run + 1 if self.offset == 0 else 0
                if empty_run > len(self.shards):
                    raise UtaBenchError(f"stream {self.index}: its shards hold no samples")
                self._it, self.offset, self.shard_pos = None, 0, self.shard_pos + 1
                if self.shard_pos >= len(self.my_shards(self.epoch)):
                    self.epoch, self.shard_pos = self.epoch + 1, 0
                continue
            shard_id = self.my_shards(self.epoch)[self.shard_pos]
            seed = int(np.random.default_rng([self.seed, self.epoch, shard_id, self.offset]).integers(2 ** 62))
            out.append((sample, seed))
            self.offset += 1
        return out

    @property
    def position(self) -> list[int]:
        return [self.epoch, self.shard_pos, self.offset]


class PairStreams:
    """The streams of process ``rank``: ``next_batch()`` -> (images [n,3,H,W], captions list)."""

    def __init__(self, spec: str, *, n_streams: int, global_batch: int, rank: int, world_size: int, seed: int,
                 sample: ImageTextSample, position: dict | None = None, decode_threads: int = 0):
        shards = expand_shards(spec)
        if len(shards) < n_streams:
            raise UtaBenchError(f"{len(shards)} shards in {spec!r} but data_streams is {n_streams}; "
                                "set data_streams <= the number of shards")
        saved = (position or {}).get("streams")
        if saved is not None and len(saved) != n_streams:
            raise UtaBenchError(f"resume state has {len(saved)} data streams, the recipe {n_streams}; "
                                "resume with the recipe's original data_streams")
        self.per_stream = global_batch // n_streams
        self.sample, self.skipped = sample, 0
        if decode_threads > 0:      # PIL decodes without the GIL; order and seeds are fixed beforehand
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        else:
            self.pool = None
        self.streams = [_Stream(s, n_streams, shards, seed, saved[s] if saved else None)
                        for s in range(rank, n_streams, world_size)]

    def next_batch(self) -> tuple[torch.Tensor, list[str]]:
        """``global_batch / S`` decoded pairs from each of this process's streams, in stream order.

        A sample that does not decode (corrupt image, missing .jpg/.txt) is logged and replaced by the
        stream's next one: deterministic, so a resumed run skips the same samples."""
        pairs = []
        for st in self.streams:
            got: list = []
            while len(got) < self.per_stream:
                raws = st.take(self.per_stream - len(got))
                for (raw, seed), item in zip(raws, self._decode(raws)):
                    if isinstance(item, Exception):
                        self.skipped += 1
                        log.warning("skipping sample %s of %s: %s", raw.get("__key__"), raw.get("__url__"), item)
                    else:
                        got.append(item)
            pairs += got
        return torch.stack([p[0] for p in pairs]), [p[1] for p in pairs]

    def _decode(self, raws: list) -> list:
        def one(rs):
            try:
                return self.sample(*rs)
            except (OSError, ValueError, UtaBenchError) as e:   # PIL: OSError / UnidentifiedImageError
                return e
        if self.pool is None:
            return [one(r) for r in raws]
        return list(self.pool.map(one, raws))

    def local_position(self) -> dict:
        return {st.index: st.position for st in self.streams}


def global_position(local: dict, world_size: int, n_streams: int) -> dict:
    """Every stream's position (gathered from all processes when distributed)."""
    parts = [local]
    if world_size > 1:
        import torch.distributed as dist

        parts = [None] * world_size
        dist.all_gather_object(parts, local)
    merged = {int(k): v for p in parts for k, v in p.items()}
    return {"streams": [list(merged[s]) for s in range(n_streams)]}


def write_shards(pairs, out_dir, per_shard: int = 100, prefix: str = "shard") -> list[str]:
    """Write ``(PIL image or uint8 HxWx3 array, caption)`` pairs as DataComp-style tar shards."""
    from pathlib import Path

    import webdataset as wds
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, writer = [], None
    for i, (img, caption) in enumerate(pairs):
        if i % per_shard == 0:
            if writer:
                writer.close()
            paths.append(str(out / f"{prefix}-{len(paths):05d}.tar"))
            writer = wds.TarWriter(paths[-1])
        im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=95)
        writer.write({"__key__": f"{i:09d}", "jpg": buf.getvalue(), "txt": caption})
    if writer:
        writer.close()
    return paths
