"""Multi-level features from a registered model's timm ``Eva`` tower, for UperNet (torch + timm only).

* The tower is rebuilt at the segmentation crop (default 512 px, patch 16, so a 32x32 grid) with
  drop-path; ``dynamic_img_size`` lets sliding-window / whole-image inference use other sizes.
* Weights come from ``uta_bench.load_model`` (any registered UTA card / checkpoint): the absolute
  position embedding is resampled (bicubic, ``timm.layers.resample_abs_pos_embed``) to the new grid,
  a patch-14 kernel is resampled to 16 (``timm.layers.resample_patch_embed``, EVA's "psz14to16"),
  RoPE is recomputed by timm for the new grid against the 16x16 reference grid (EVA-02's
  ``pt_hw_seq_len=16``).
* ``forward`` returns the patch tokens of 4 blocks spread over depth as NCHW maps at stride 16; the
  neck (mmseg ``Feature2Pyramid``: deconv x2 x2, deconv x2, identity, max-pool) rescales them to
  strides 4/8/16/32.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from uta_bench.errors import CheckpointError, UtaBenchError


def default_out_indices(depth: int) -> tuple[int, ...]:
    """BEiT / EVA-02 UperNet choice for 12 and 24 blocks; otherwise 4 evenly spaced blocks."""
    if depth == 12:
        return (3, 5, 7, 11)
    if depth == 24:
        return (7, 11, 15, 23)
    return tuple(min(depth - 1, max(0, round(depth * (k + 1) / 4) - 1)) for k in range(4))


class EvaMultiLevel(nn.Module):
    """timm Eva trunk (no head) returning ``len(out_indices)`` NCHW feature maps."""

    def __init__(self, model: str, img_size: int = 512, patch_size: int = 16, drop_path_rate: float = 0.0,
                 out_indices: tuple[int, ...] | None = None):
        super().__init__()
        from uta_bench.models.uta import UTA_ARCHS, build_visual
        from uta_bench.registry import get_card

        card = get_card(model)
        if card.family != "uta":
            raise UtaBenchError(f"model {model} ({card.family}) has no timm Eva vision tower; segmentation "
                                "supports the UTA-family models (see `uta-bench models`)")
        self.model_name, self.arch = model, card.arch
        depth = UTA_ARCHS[card.arch]["depth"]
        self.out_indices = tuple(out_indices) if out_indices is not None else default_out_indices(depth)
        if not self.out_indices or max(self.out_indices) >= depth or min(self.out_indices) < 0:
            raise UtaBenchError(f"out_indices {self.out_indices} outside the {depth} blocks of {model}")
        self.eva = build_visual(card.arch, num_classes=0, img_size=img_size, patch_size=patch_size,
                                drop_path_rate=drop_path_rate, dynamic_img_size=True)
        self.embed_dim = self.eva.embed_dim
        self.num_layers = depth

    def load_from_model(self, checkpoint: str | None = None, pretrained: bool = True,
                        trust_checkpoint: bool = False) -> dict:
        """Copy the trunk of ``load_model(model, checkpoint)`` (resampling grid/patch); returns info."""
        from timm.layers import resample_abs_pos_embed, resample_patch_embed

        from uta_bench.models.loader import load_model

        loaded = load_model(self.model_name, checkpoint=checkpoint, pretrained=pretrained,
                            trust_checkpoint=trust_checkpoint)
        src = {k: v for k, v in loaded.model.visual.state_dict().items() if not k.startswith("head.")}
        own = self.eva.state_dict()
        w = src["patch_embed.proj.weight"]
        if w.shape[-2:] != own["patch_embed.proj.weight"].shape[-2:]:
            src["patch_embed.proj.weight"] = resample_patch_embed(w, list(own["patch_embed.proj.weight"].shape[-2:]))
        pe = src["pos_embed"]
        if pe.shape != own["pos_embed"].shape:
            old = int(round((pe.shape[1] - 1) ** 0.5))
            new = self.eva.patch_embed.grid_size
            src["pos_embed"] = resample_abs_pos_embed(pe, new_size=list(new), old_size=[old, old],
                                                      num_prefix_tokens=1)
        missing, unexpected = self.eva.load_state_dict(src, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"trunk of {self.model_name} does not fit the segmentation backbone: "
                                  f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        return {"weights_sha256": loaded.weights_sha256, "weights_path": loaded.weights_path}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        uniq = sorted(set(self.out_indices))   # tiny test models repeat blocks; timm wants unique ones
        feats = self.eva.forward_intermediates(x, indices=uniq, norm=False, output_fmt="NCHW",
                                               intermediates_only=True)
        return tuple(feats[uniq.index(i)] for i in self.out_indices)


def layer_id(name: str, num_layers: int) -> int:
    """Layer index for layer-wise lr decay (BEiT rule on timm names): embeddings 0, block i -> i + 1,
    everything else in the segmentor (final norm, neck, heads) num_layers + 1."""
    if not name.startswith("backbone."):
        return num_layers + 1
    sub = name[len("backbone."):]
    if sub.startswith("eva."):
        sub = sub[len("eva."):]
    if sub.startswith(("cls_token", "pos_embed", "patch_embed", "reg_token")):
        return 0
    if sub.startswith("blocks."):
        return int(sub.split(".")[1]) + 1
    return num_layers + 1
