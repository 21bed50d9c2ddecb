"""The CLIP model being fine-tuned: a UTA image tower + a text tower, fixed temperature.

* image tower: a registered model (``load_model``) or a file in the released UTA layout (what
  ``train pretrain`` writes as OUTPUT_DIR/student.safetensors); its patch kernel and absolute
  position embedding are resampled to the target architecture (``timm.layers.resample_patch_embed``
  for UTA-B's p14 -> p16, ``resample_abs_pos_embed`` for the 336 px stage; RoPE is recomputed by timm
  for the new grid, as the official code does);
* text tower: the text tower of a registered model (EVA-01-CLIP-g/14-plus for the paper's models)
  or of a UTA-layout file;
* logit scale: 1 / temperature, a frozen buffer-like parameter (App. A.1: fixed to 0.01).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from uta_bench.errors import CheckpointError

log = logging.getLogger(__name__)


class ClipPair(nn.Module):
    """``forward(images, tokens)`` -> L2-normalised (image, text) features; wraps a ``UTAModel``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (F.normalize(self.model.encode_image(images), dim=-1),
                F.normalize(self.model.encode_text(tokens), dim=-1))


def _file_of(checkpoint: str) -> Path:
    p = Path(checkpoint).expanduser()
    return p / "student.safetensors" if p.is_dir() else p


def source_state(init: dict, trust: bool) -> tuple[dict, dict]:
    """Internal-name state dict (``visual.*`` / ``text.*``) of an init source + its provenance."""
    from uta_bench.checkpoint import read_state_dict, sha256_file
    from uta_bench.models.uta import official_to_internal

    if init.get("model"):
        from uta_bench.models.loader import load_model

        loaded = load_model(init["model"], checkpoint=init.get("checkpoint"), trust_checkpoint=trust,
                            pretrained=init.get("pretrained", True))
        sd = {f"visual.{k}": v for k, v in loaded.visual.state_dict().items()}
        sd.update({f"text.{k}": v for k, v in loaded.text_tower.state_dict().items()})
        return sd, {"model": init["model"], "weights_path": loaded.weights_path,
                    "weights_sha256": loaded.weights_sha256}
    path = _file_of(init["checkpoint"])
    sd, unexpected, _ = official_to_internal(read_state_dict(path, trust=trust))
    if unexpected:
        raise CheckpointError(f"{path}: keys not in the released UTA layout: {', '.join(unexpected[:3])}")
    info = {"weights_path": str(path), "weights_sha256": sha256_file(path)}
    info.update(_safetensors_metadata(path))
    return sd, info


def _safetensors_metadata(path: Path) -> dict:
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return {"source_metadata": meta} if meta else {}


def resample_visual(src: dict, target: nn.Module) -> dict:
    """``src`` (Eva state dict) fitted to ``target``'s patch size and grid (bicubic, timm's functions)."""
    from timm.layers import resample_abs_pos_embed, resample_patch_embed

    src = dict(src)
    own = target.state_dict()
    w = src.get("patch_embed.proj.weight")
    if w is not None and w.shape[-2:] != own["patch_embed.proj.weight"].shape[-2:]:
        src["patch_embed.proj.weight"] = resample_patch_embed(
            w.float(), list(own["patch_embed.proj.weight"].shape[-2:])).to(w.dtype)
    pe = src.get("pos_embed")
    if pe is not None and pe.shape != own["pos_embed"].shape:
        old = int(round((pe.shape[1] - 1) ** 0.5))
        src["pos_embed"] = resample_abs_pos_embed(pe.float(), new_size=list(target.patch_embed.grid_size),
                                                  old_size=[old, old], num_prefix_tokens=1).to(pe.dtype)
    return src


def _load_part(module: nn.Module, sd: dict, prefix: str, what: str) -> None:
    part = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if prefix == "visual.":
        part = resample_visual(part, module)
    part = {k: v for k, v in part.items() if k != "attn_mask"}
    own = module.state_dict()
    missing = sorted(k for k in own if k not in part and k != "attn_mask")
    extra = sorted(k for k in part if k not in own)
    shapes = [f"{k}: {list(v.shape)} vs {list(own[k].shape)}" for k, v in part.items()
              if k in own and v.shape != own[k].shape]
    if missing or extra or shapes:
        raise CheckpointError(f"{what} does not fit the recipe's arch: missing {missing[:3]}, unexpected "
                              f"{extra[:3]}, shapes {shapes[:3]}")
    module.load_state_dict(part, strict=False)


def build_clip(cfg) -> tuple[nn.Module, dict]:
    """The ``UTAModel`` of ``cfg.arch`` with both towers initialised; returns (model, provenance)."""
    from uta_bench.models.uta import UTAModel

    model = UTAModel(cfg.arch)
    vis_sd, vis_info = source_state(cfg.vision_init, cfg.trust_checkpoint)
    _load_part(model.visual, vis_sd, "visual.", f"image tower {vis_info}")
    if cfg.text_init == cfg.vision_init:
        txt_sd, txt_info = vis_sd, vis_info
    else:
        txt_sd, txt_info = source_state(cfg.text_init, cfg.trust_checkpoint)
    _load_part(model.text, txt_sd, "text.", f"text tower {txt_info}")
    model.logit_scale.data.fill_(math.log(1.0 / cfg.temperature))
    model.logit_scale.requires_grad_(False)
    if cfg.grad_checkpointing:
        model.visual.set_grad_checkpointing(True)
        model.text.set_grad_checkpointing(True)
    return model, {"vision_init": vis_info, "text_init": txt_info}


class _TextLayers:
    """timm's layer-decay grouping for open_clip's TextTransformer (embeddings, blocks, head)."""

    def __init__(self, text: nn.Module):
        self.text = text

    def named_parameters(self, *a, **k):
        return self.text.named_parameters(*a, **k)

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"stem": r"^(?:token_embedding|positional_embedding)",
                "blocks": r"^transformer\.resblocks\.(\d+)"}   # ln_final, text_projection: top layer

    def no_weight_decay(self) -> set:
        return {"positional_embedding", "token_embedding.weight"}


def param_groups(model: nn.Module, *, weight_decay: float, layer_decay: float) -> list[dict]:
    """timm's layer-decay groups (``lr_scale``) of each tower: deepest block 1, embeddings decay^(L+1)."""
    from timm.optim import param_groups_layer_decay

    vis = param_groups_layer_decay(model.visual, weight_decay=weight_decay, layer_decay=layer_decay,
                                   no_weight_decay_list=tuple(model.visual.no_weight_decay()))
    txt = param_groups_layer_decay(_TextLayers(model.text), weight_decay=weight_decay, layer_decay=layer_decay,
                                   no_weight_decay_list=tuple(_TextLayers(model.text).no_weight_decay()))
    groups = vis + txt
    n_opt = sum(p.numel() for g in groups for p in g["params"])
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if n_opt != n_train:
        raise RuntimeError(f"layer-decay groups cover {n_opt} of {n_train} trainable parameters")
    return groups


def export_checkpoint(path, model: nn.Module, arch: str, metadata: dict) -> Path:
    """Both towers + logit_scale in the released UTA layout (safetensors, atomic), provenance as metadata."""
    import json

    from safetensors.torch import save_file

    from uta_bench.models.uta import internal_to_official

    sd = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    official = internal_to_official(sd, arch)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in metadata.items()}
    try:
        save_file({k: v.contiguous() for k, v in official.items()}, str(tmp), metadata=meta)
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
