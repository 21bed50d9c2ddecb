"""CLIP / OpenCLIP / EVA-CLIP / DataComp baselines, built and loaded by open_clip itself."""
from __future__ import annotations

import logging
from pathlib import Path

from uta_bench.checkpoint import read_state_dict, strict_load
from uta_bench.errors import NotFoundError
from uta_bench.registry import ModelCard

log = logging.getLogger(__name__)


def load_open_clip(card: ModelCard, checkpoint: str | None, trust: bool, pretrained: bool):
    """(model, weights path). Our reader (trust gate, strict diff) for user files; open_clip for its own."""
    import open_clip

    if checkpoint is not None:
        model = open_clip.create_model(card.arch, pretrained=None)
        sd = read_state_dict(checkpoint, trust=trust)
        strict_load(model, sd, card.name)
        return model, Path(checkpoint)
    if not pretrained:
        return open_clip.create_model(card.arch, pretrained=None), None
    tag = card.weights.open_clip_pretrained
    cfg = open_clip.get_pretrained_cfg(card.arch, tag)
    if not cfg:
        raise NotFoundError(f"open_clip has no pretrained tag {tag!r} for {card.arch}; "
                            "upgrade open_clip_torch or pass --checkpoint PATH")
    try:
        from uta_bench.models.weights import _offline

        if _offline():
            raise OSError("offline")
        path = open_clip.download_pretrained(cfg)
    except Exception as e:  # noqa: BLE001 - any hub/network failure ends in the same advice
        log.warning("open_clip weights for %s could not be fetched: %s: %s", card.name,
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        hub = cfg.get("hf_hub") or cfg.get("url") or "the open_clip hub"
        raise NotFoundError(f"no weights for {card.name}: download {hub} (open_clip {card.arch} / {tag}) "
                            f"when online, or pass --checkpoint PATH") from None
    model = open_clip.create_model(card.arch, pretrained=None)
    open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    return model, Path(path)
