"""Image features for a task: chunked, cached on disk, resumable, sharded across torchrun ranks.

The cache is content-addressed by (model weights, preprocess, data manifest, precision): any
change of those is a different key. Each fixed chunk of samples is written atomically as soon as it
is computed, so a killed run resumes where it stopped and a re-run (or a new metric) computes
nothing. Unreadable images are caught per sample: ``on_bad_image="fail"`` stops with the file name,
``"skip"`` drops them and reports them.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uta_bench.distributed import Dist, gather
from uta_bench.errors import UtaBenchError
from uta_bench.models.loader import model_identity
from uta_bench.paths import atomic_write_bytes, home

CHUNK = 1024   # samples per cache file
log = logging.getLogger(__name__)


@dataclass
class Features:
    feats: torch.Tensor            # [n_kept, D] L2-normalised, float32
    index: torch.Tensor            # [n_kept] sample indices (into the task's sample list)
    bad: list = field(default_factory=list)   # [(sample index, name, error)]
    computed: int = 0              # images encoded in this run (not from the cache), all ranks
    seconds: float = 0.0
    per_rank: list = field(default_factory=list)   # images encoded by each rank


class ImageRefs(torch.utils.data.Dataset):
    """Decode + preprocess images by sample index; a failure becomes (None, index, error)."""

    def __init__(self, refs, transform, indices):
        self.refs, self.transform, self.indices = refs, transform, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        from PIL import Image

        idx = self.indices[i]
        ref = self.refs[idx]
        try:
            src = io.BytesIO(ref.read()) if hasattr(ref, "read") else ref
            with Image.open(src) as im:
                img = im.convert("RGB")
            return self.transform(img), idx, ""
        except Image.UnidentifiedImageError:
            return None, idx, "not an image PIL can read (empty or corrupt file)"
        except Exception as e:  # noqa: BLE001 - any decode/transform failure is a bad image
            return None, idx, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def collate(batch):
    ok = [b for b in batch if b[0] is not None]
    imgs = torch.stack([b[0] for b in ok]) if ok else None
    return imgs, torch.tensor([b[1] for b in ok], dtype=torch.long), [(b[1], b[2]) for b in batch if b[0] is None]


def feature_key(loaded, manifest: str, model_id: str | None = None) -> str:
    payload = json.dumps({"model": model_id or model_identity(loaded), "preprocess": repr(loaded.preprocess),
                          "manifest": manifest, "precision": loaded.precision_run, "v": 1}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_root() -> Path:
    return home() / "cache" / "features"


def _chunk_path(key: str, start: int, end: int) -> Path:
    return cache_root() / key[:2] / key / f"{start:09d}-{end:09d}.safetensors"


def _read_chunk(path: Path):
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            return f.get_tensor("feats"), f.get_tensor("index"), json.loads(meta.get("bad", "[]"))
    except Exception as e:  # noqa: BLE001 - unreadable entry: recompute (rewritten atomically)
        log.warning("feature cache chunk %s is unreadable (%s: %s); recomputing it", path, type(e).__name__,
                    str(e).splitlines()[0] if str(e) else "")
        return None


def _write_chunk(path: Path, feats, index, bad) -> bool:
    """Write one cache chunk; a failure (full disk) is a warning and the run goes on uncached."""
    from safetensors.torch import save

    try:
        atomic_write_bytes(path, save({"feats": feats.contiguous(), "index": index.contiguous()},
                                      metadata={"bad": json.dumps(bad)}))
        return True
    except OSError as e:
        log.warning("cannot write the feature cache %s (%s); going on without caching (a re-run "
                    "encodes these images again)", path.parent, e.strerror or e)
        return False


def cache_writable(key: str) -> bool:
    """Probe the cache folder of ``key`` before encoding anything: a read-only or missing
    $UTA_BENCH_HOME is a warning up front, not a traceback after every image has been encoded."""
    import tempfile

    try:
        d = _chunk_path(key, 0, 0).parent
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
        return True
    except OSError as e:
        log.warning("the feature cache under %s is not writable (%s); encoding without caching "
                    "(set UTA_BENCH_HOME to a writable folder to cache features)", cache_root_safe(),
                    e.strerror or e)
        return False


def cache_root_safe() -> str:
    try:
        return str(cache_root())
    except OSError:
        import os

        return os.environ.get("UTA_BENCH_HOME", "~/.cache/uta-bench")


def _bad_error(name: str, err: str) -> UtaBenchError:
    return UtaBenchError(f"cannot read image {name} ({err}); fix or remove it, or pass --on-bad-image skip")


def _report_skipped(label: str, bad: list, n: int, first: int = 3) -> None:
    names = "; ".join(f"{name} ({err})" for _, name, err in bad[:first])
    more = f"; and {len(bad) - first} more (all listed in the run's extra_json)" if len(bad) > first else ""
    log.warning("%s: skipped %d of %d unreadable images (--on-bad-image skip): %s%s",
                label, len(bad), n, names, more)


@torch.no_grad()
def image_features(loaded, refs, key: str, *, n: int | None = None, batch_size: int = 64, workers: int = 0,
                   on_bad_image: str = "fail", use_cache: bool = True, progress: bool = True,
                   label: str = "images", dist: Dist | None = None, chunk: int = CHUNK,
                   sizer=None) -> Features:
    """Features of ``refs[:n]``, identical on every rank and for any number of ranks.

    Each loaded batch is encoded through ``sizer`` (:class:`uta_bench.resources.OomBackoff`; default: a
    fixed ``batch_size``, where CUDA out-of-memory is a one-line error): with ``--batch-size auto`` it
    halves on out-of-memory and encodes the same images again."""
    from torch.utils.data import DataLoader

    from uta_bench.progress import progress_bar
    from uta_bench.resources import OomBackoff

    sizer = sizer or OomBackoff(batch_size, auto=False)

    if on_bad_image not in ("fail", "skip"):
        raise UtaBenchError(f"--on-bad-image must be fail or skip, not {on_bad_image!r}")
    dist = dist or Dist()
    n = len(refs) if n is None else min(n, len(refs))
    chunks = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    mine = chunks[dist.rank::dist.world]
    write_cache = use_cache and bool(mine) and cache_writable(key)
    results, computed, t0 = [], 0, time.perf_counter()
    todo = sum(e - s for s, e in mine)
    with progress_bar(progress and dist.main, todo, label, "img") as advance:
        pending = []
        for s, e in mine:
            path = _chunk_path(key, s, e) if use_cache else None
            hit = _read_chunk(path) if path is not None and path.is_file() else None
            if hit is not None:
                results.append((s, *hit))
                advance(e - s)
            else:
                pending.append((s, e))
        # one DataLoader over every pending chunk (workers start once, prefetch runs across chunk
        # boundaries); batches never straddle a chunk, so each chunk is written as soon as it is done
        batches = [list(range(b, min(b + batch_size, e))) for s, e in pending for b in range(s, e, batch_size)]
        it = iter(DataLoader(ImageRefs(refs, loaded.preprocess, range(len(refs))), batch_sampler=batches,
                             num_workers=workers, collate_fn=collate)) if batches else None
        for s, e in pending:
            feats, index, bad, seen = [], [], [], 0
            while seen < e - s:
                imgs, idx, errs = next(it)
                for i, err in errs:
                    if on_bad_image == "fail" and not dist.enabled:
                        raise _bad_error(str(refs[i]), err)
                    bad.append((i, str(refs[i]), err))
                if imgs is not None:
                    feats.append(sizer(lambda x: loaded.encode_image(x).float().cpu(), imgs))
                    index.append(idx)
                seen += len(idx) + len(errs)
                advance(len(idx) + len(errs))
            computed += seen
            f = torch.cat(feats) if feats else torch.empty(0, 0)
            ix = torch.cat(index) if index else torch.empty(0, dtype=torch.long)
            if write_cache and not (bad and on_bad_image == "fail"):
                write_cache = _write_chunk(_chunk_path(key, s, e), f, ix, bad)
            results.append((s, f, ix, bad))
        del it
    results.sort(key=lambda r: r[0])
    seconds = time.perf_counter() - t0
    gathered = gather((results, computed), dist)
    per_rank = [c for _, c in gathered]
    parts = [r for rank_results, _ in gathered for r in rank_results]
    parts.sort(key=lambda r: r[0])
    bad = [tuple(b) for p in parts for b in p[3]]
    if bad and on_bad_image == "fail":
        raise _bad_error(bad[0][1], bad[0][2])
    if n and len(bad) >= n:
        raise UtaBenchError(f"{label}: none of the {n} images could be read (first: {bad[0][1]}: {bad[0][2]}); "
                            "nothing to evaluate - check the data folder (`uta-bench data check`)")
    if bad and dist.main:
        _report_skipped(label, bad, n)
    nonempty = [p for p in parts if p[1].numel()]
    feats = torch.cat([p[1] for p in nonempty]) if nonempty else torch.empty(0, 0)
    index = torch.cat([p[2] for p in nonempty]) if nonempty else torch.empty(0, dtype=torch.long)
    return Features(feats, index, bad, sum(per_rank), seconds, per_rank)
