"""clip_benchmark's webdataset layout, read with random access (exact sharding, resumable caching).

Layout (what ``clip_benchmark_export_wds`` writes)::

    <root>/<split>/nshards.txt   <root>/<split>/0.tar ... <n-1>.tar
    <root>/classnames.txt  <root>/zeroshot_classification_templates.txt  <root>/dataset_type.txt

A sample is the tar members sharing a key (basename up to its first dot): one image (``webp``,
``png``, ``jpg`` or ``jpeg``, first found in that order, as clip_benchmark's ``to_tuple``), plus ``cls``
(integer label: index into the dataset's classes) or ``txt`` (captions, one per line) for retrieval.
We index member offsets once, so any sample is read without streaming the shard.
"""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
_KEY = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")


@dataclass(frozen=True)
class TarRef:
    """An image stored inside a tar shard."""

    tar: str
    offset: int
    size: int
    name: str

    def read(self) -> bytes:
        with open(self.tar, "rb") as f:
            f.seek(self.offset)
            return f.read(self.size)

    def __str__(self) -> str:
        return f"{self.tar}:{self.name}"


@dataclass
class WdsListing:
    root: Path
    refs: list[TarRef]
    labels: list[int] | None
    captions: list[list[str]] | None
    dataset_type: str
    classnames: list[str] | None
    templates: list[str] | None
    shards: list[Path] = field(default_factory=list)


def is_wds(root: Path, split: str = "test") -> bool:
    return (root / split / "nshards.txt").is_file()


def _read_lines(p: Path) -> list[str] | None:
    return [ln.strip() for ln in p.read_text().splitlines()] if p.is_file() else None


def list_wds(root: str | Path, split: str = "test") -> WdsListing:
    root = Path(root)
    nfile = root / split / "nshards.txt"
    if not nfile.is_file():
        raise NotFoundError(f"{nfile} not found: not a clip_benchmark webdataset folder")
    try:
        n = int(nfile.read_text().strip())
    except ValueError:
        raise UtaBenchError(f"{nfile} must contain the number of shards") from None
    shards = [root / split / f"{i}.tar" for i in range(n)]
    missing = [s for s in shards if not s.is_file()]
    if missing:
        raise NotFoundError(f"webdataset shard {missing[0]} is missing ({len(missing)} of {n})")
    dtype = ((root / "dataset_type.txt").read_text().strip().lower()
             if (root / "dataset_type.txt").is_file() else "classification")
    refs, labels, captions = [], [], []
    for shard in shards:
        for key, members in _samples(shard):
            img = next((members[e] for e in IMAGE_EXTS if e in members), None)
            if img is None:
                raise UtaBenchError(f"{shard}: sample {key!r} has no image ({'/'.join(IMAGE_EXTS)})")
            refs.append(img)
            if dtype == "retrieval":
                if "txt" not in members:
                    raise UtaBenchError(f"{shard}: sample {key!r} has no .txt captions")
                captions.append(members["txt"].read().decode("utf-8").splitlines())
            else:
                if "cls" not in members:
                    raise UtaBenchError(f"{shard}: sample {key!r} has no .cls label")
                try:
                    labels.append(int(members["cls"].read().decode().strip()))
                except ValueError:
                    raise UtaBenchError(f"{shard}: sample {key!r} has a non-integer .cls label") from None
    names = _read_lines(root / "classnames.txt")
    temps = _read_lines(root / "zeroshot_classification_templates.txt")
    return WdsListing(root, refs, None if dtype == "retrieval" else labels,
                      captions if dtype == "retrieval" else None, dtype,
                      [x for x in names if x] if names else None, [x for x in temps if x] if temps else None, shards)


def _samples(shard: Path):
    """(key, {ext: TarRef}) in tar order; members of one key are contiguous, as webdataset requires."""
    cur_key, cur = None, {}
    try:
        with tarfile.open(shard, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                hit = _KEY.match(m.name)
                if not hit:
                    continue
                key, ext = hit.group(1), hit.group(2).lower()
                if key != cur_key:
                    if cur_key is not None:
                        yield cur_key, cur
                    cur_key, cur = key, {}
                cur[ext] = TarRef(str(shard), m.offset_data, m.size, m.name)
    except tarfile.TarError as e:
        raise UtaBenchError(f"{shard} is not a readable tar shard: {e}") from None
    if cur_key is not None:
        yield cur_key, cur
