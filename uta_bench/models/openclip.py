"""CLIP / OpenCLIP / EVA-CLIP / DataComp baselines, built and loaded by open_clip itself.

The same path serves the registered baselines and the cards made on the fly (:mod:`uta_bench.speccards`):
``open_clip:ARCH/TAG`` builds ``ARCH`` and loads the tag's weights; ``hf-hub:ORG/NAME`` builds from the repo's
``open_clip_config.json`` and loads its weights file."""
from __future__ import annotations

import logging
from pathlib import Path

from uta_bench.checkpoint import read_state_dict, strict_load
from uta_bench.errors import NotFoundError
from uta_bench.registry import ModelCard

log = logging.getLogger(__name__)


def _build(card: ModelCard):
    """The random-init model of ``card`` (no weights read or downloaded; a hub repo's config only)."""
    import open_clip

    if card.arch.startswith("hf-hub:"):
        from uta_bench.speccards import hub_config_path

        # open_clip's local-dir schema builds from the config file's folder (the cached snapshot);
        # load_weights=False: its weights, if cached there too, are read by load_open_clip, not here
        folder = Path(hub_config_path(card.weights.hf_repo)).parent
        return open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    return open_clip.create_model(card.arch, pretrained=None, force_quick_gelu=card.quick_gelu)


def load_open_clip(card: ModelCard, checkpoint: str | None, trust: bool, pretrained: bool):
    """(model, weights path). Our reader (trust gate, strict diff) for user files; open_clip for its own."""
    import open_clip

    if checkpoint is not None:
        model = _build(card)
        sd = read_state_dict(checkpoint, trust=trust)
        strict_load(model, sd, card.name)
        return model, Path(checkpoint)
    if not pretrained:
        return _build(card), None
    path = _hub_weights(card) if card.weights.hf_repo else _tag_weights(card)
    model = _build(card)
    open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    return model, Path(path)


def _tag_weights(card: ModelCard) -> str:
    import open_clip

    tag = card.weights.open_clip_pretrained
    if not tag:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(card.arch)) or "none"
        raise NotFoundError(f"{card.name} names no pretrained weights; use open_clip:{card.arch}/TAG (tags: {tags}), "
                            "or --random-init / --checkpoint PATH")
    cfg = open_clip.get_pretrained_cfg(card.arch, tag)
    if not cfg:
        raise NotFoundError(f"open_clip has no pretrained tag {tag!r} for {card.arch}; "
                            "upgrade open_clip_torch or pass --checkpoint PATH")
    try:
        from uta_bench.models.weights import _offline

        if _offline():
            raise OSError("offline")
        return open_clip.download_pretrained(cfg)
    except Exception as e:  # noqa: BLE001 - any hub/network failure ends in the same advice
        _warn(card, e)
        hub = cfg.get("hf_hub") or cfg.get("url") or "the open_clip hub"
        raise NotFoundError(f"no weights for {card.name}: download {hub} (open_clip {card.arch} / {tag}) "
                            f"when online, or pass --checkpoint PATH") from None


def _hub_weights(card: ModelCard) -> str:
    """The repo's weights file, found the way open_clip finds it (safetensors first), through the HF cache."""
    from open_clip.pretrained import download_pretrained_from_hf

    repo = card.weights.hf_repo
    try:
        return download_pretrained_from_hf(repo)
    except Exception as e:  # noqa: BLE001 - missing file, offline, network: the same advice
        _warn(card, e)
        raise NotFoundError(f"no weights for {card.name}: hub repo {repo} has no open_clip weights file in the "
                            "Hugging Face cache or on the hub (open_clip_model.safetensors / "
                            "open_clip_pytorch_model.bin); run online, or pass --checkpoint PATH") from None


def _warn(card: ModelCard, e: Exception) -> None:
    log.warning("open_clip weights for %s could not be fetched: %s: %s", card.name,
                type(e).__name__, str(e).splitlines()[0] if str(e) else "")
