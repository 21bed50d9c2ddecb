"""Detection towers: build the registered model's timm ``Eva`` for ViTDet and load its weights through the
core checkpoint adapter (``official_to_internal`` + ``strict_load``), so every checkpoint that
``uta_bench.load_model(name, checkpoint=...)`` accepts initialises the detector, with the same errors."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from uta_bench.errors import CheckpointError, UtaBenchError
from uta_bench.det.backbone import DET_PATCH


def tower_arch(model: str) -> str:
    """The UTA architecture of registered model ``model`` (aliases resolved); UTA family only."""
    from uta_bench.registry import get_card, resolve_alias

    card = get_card(model)
    if card.family != "uta":
        raise UtaBenchError(f"detection backbone supports UTA-family models (timm Eva towers); {model!r} is "
                            f"{card.family} - pick one of the uta_* models")
    return resolve_alias(model).arch


def build_det_tower(model: str, drop_path_rate: float = 0.0, det_patch: int = DET_PATCH) -> nn.Module:
    """``build_visual(arch)`` with dynamic image size, stochastic depth, no head, and a ``det_patch`` px patch.

    A p14 tower keeps its pre-training grid (img_size = grid * det_patch) so its position embedding loads
    as is; its patch kernel is resampled at load time (:func:`load_tower_weights`).
    """
    from uta_bench.models.uta import UTA_ARCHS, build_visual

    arch = tower_arch(model)
    cfg = UTA_ARCHS[arch]
    grid = cfg["img_size"] // cfg["patch_size"]
    return build_visual(arch, num_classes=0, dynamic_img_size=True, drop_path_rate=drop_path_rate,
                        patch_size=det_patch, img_size=grid * det_patch)


def tower_state_dict(model: str, checkpoint: str | None = None, trust: bool = False,
                     det_patch: int = DET_PATCH) -> tuple[dict, Path]:
    """Visual weights of ``model`` (from ``checkpoint`` or the card's weights) in timm-Eva names, head dropped,
    patch kernel resampled to ``det_patch``. Raises CheckpointError on a checkpoint that is not this model's."""
    from uta_bench.checkpoint import format_diff, read_state_dict
    from uta_bench.models.uta import official_rope_tables, official_to_internal
    from uta_bench.models.weights import resolve_weights
    from uta_bench.registry import get_card

    arch = tower_arch(model)
    card = get_card(model)
    path = Path(resolve_weights(card, checkpoint))
    sd = read_state_dict(path, trust=trust)
    if not any(k.startswith("visual.") for k in sd):
        raise CheckpointError(f"checkpoint {path} has no 'visual.*' keys: not a UTA/EVA-CLIP checkpoint for {model}")
    converted, unexpected, rope = official_to_internal(sd)
    want, _ = official_rope_tables(arch)
    bad = [f"visual.{k}: checkpoint {list(v.shape)} vs model {list(want.shape)}"
           for k, v in rope.items() if tuple(v.shape) != tuple(want.shape)]
    if bad:
        raise CheckpointError(format_diff(model, [], [k for k in unexpected if k.startswith("visual.")], bad))
    vis = {k[len("visual."):]: v for k, v in converted.items()
           if k.startswith("visual.") and not k.startswith("visual.head.")}
    w = vis.get("patch_embed.proj.weight")
    if w is not None and w.ndim == 4 and w.shape[-1] != det_patch:
        from timm.layers import resample_patch_embed

        vis["patch_embed.proj.weight"] = resample_patch_embed(w.float(), [det_patch, det_patch]).to(w.dtype)
    extra = [k for k in unexpected if k.startswith("visual.")]
    if extra:
        raise CheckpointError(format_diff(model, [], extra, []))
    return vis, path


def load_tower_weights(tower: nn.Module, model: str, checkpoint: str | None = None, trust: bool = False) -> Path:
    """Strictly load ``model``'s visual weights into a tower from :func:`build_det_tower`."""
    from uta_bench.checkpoint import strict_load

    det_patch = tower.patch_embed.patch_size[0]
    vis, path = tower_state_dict(model, checkpoint, trust, det_patch=det_patch)
    strict_load(tower, vis, model)
    return path


def check_checkpoint(model: str, checkpoint: str | None, trust: bool = False) -> Path:
    """Pre-flight (before any Runner is built): the weights exist, are readable and fit ``model``.

    Shapes are compared against a tower built on the meta device (no memory, instant even for ViT-g)."""
    from uta_bench.checkpoint import diff_state_dicts, format_diff

    with torch.device("meta"):
        tower = build_det_tower(model)
    vis, path = tower_state_dict(model, checkpoint, trust, det_patch=tower.patch_embed.patch_size[0])
    missing, unexpected, shapes = diff_state_dicts(tower.state_dict(), vis)
    if missing or unexpected or shapes:
        raise CheckpointError(format_diff(model, missing, unexpected, shapes))
    return path
