"""Resolving a model's weights: --checkpoint PATH, then $UTA_BENCH_HOME / HF cache, then the HF hub."""
from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path

from uta_bench.errors import NotFoundError
from uta_bench.paths import home
from uta_bench.registry import ModelCard

SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
log = logging.getLogger(__name__)


def _offline() -> bool:
    """HF_HUB_OFFLINE set, or the hub unreachable (checked once, 3 s): no minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        log.debug("HF_HUB_OFFLINE is set: not contacting the Hugging Face hub")
        return True
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return False
    except OSError as e:
        log.info("huggingface.co unreachable (%s): treating the hub as offline", e)
        return True


def local_candidates(card: ModelCard) -> list[Path]:
    names = [card.name] + ([card.alias_of] if card.alias_of else [])
    return [home() / "weights" / f"{n}{s}" for n in names for s in SUFFIXES]


def _from_hf_cache(repo: str, pattern: str) -> Path | None:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        return None
    snaps = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not snaps.is_dir():
        return None
    for snap in sorted(snaps.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        for f in sorted(snap.rglob("*")):
            rel = f.relative_to(snap).as_posix()
            if f.is_file() and fnmatch.fnmatch(rel, pattern) and f.suffix in SUFFIXES:
                return f
    return None


def resolve_weights(card: ModelCard, checkpoint: str | None = None) -> Path:
    """Path of the weights file for ``card`` (UTA family), or a clear error saying where to put it."""
    if checkpoint:
        p = Path(checkpoint).expanduser()
        if not p.is_file():
            raise NotFoundError(f"checkpoint {p} does not exist; pass an existing file to --checkpoint")
        return p
    for p in local_candidates(card):
        if p.is_file():
            return p
    w = card.weights
    if w.hf_repo and w.filename:
        cached = _from_hf_cache(w.hf_repo, w.filename)
        if cached:
            return cached
        if not _offline():
            try:
                path = _download(w.hf_repo, w.filename)
            except Exception as e:  # noqa: BLE001 - any network/hub failure ends in the same advice
                log.warning("downloading %s from the Hugging Face hub (%s) failed: %s: %s", w.filename, w.hf_repo,
                            type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                path = None
            if path is not None:
                verify_sha256(card, path)
                return path
    where = local_candidates(card)[1]
    src = f" (from https://huggingface.co/{w.hf_repo}, file {w.filename})" if w.hf_repo else ""
    raise NotFoundError(f"no weights for {card.name}: put the checkpoint{src} at {where} "
                        f"or pass --checkpoint PATH")


def verify_sha256(card: ModelCard, path: Path) -> None:
    """Check a downloaded file against the card's known digest (when the card has one)."""
    if not card.weights.sha256:
        return
    from uta_bench.checkpoint import sha256_file
    from uta_bench.errors import CheckpointError

    got = sha256_file(path)
    if got != card.weights.sha256:
        raise CheckpointError(f"{path} has sha256 {got[:12]}..., expected {card.weights.sha256[:12]}... for "
                              f"{card.name}; delete it and download again")


def _download(repo: str, pattern: str) -> Path:
    from huggingface_hub import hf_hub_download, list_repo_files

    files = [f for f in list_repo_files(repo) if fnmatch.fnmatch(f, pattern) and f.endswith(SUFFIXES)]
    if not files:
        raise FileNotFoundError(pattern)
    return Path(hf_hub_download(repo, sorted(files)[0]))
