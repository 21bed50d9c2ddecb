"""Frozen vision tower -> patch features of one transformer block (LLaVA's ``mm_vision_select_layer``).

LLaVA takes CLIP's ``hidden_states[-2]`` (output of the penultimate block, before any final norm) and
drops the CLS token (``select_feature='patch'``). ``layer`` follows the same convention: -1 is the last
block, -2 the penultimate one. Supported towers: timm models with ``forward_intermediates`` (UTA / EVA-02
``Eva``, timm ViTs, open_clip's ``TimmModel.trunk``) and open_clip's own ``VisionTransformer`` (forward
hook on ``transformer.resblocks[i]``).
"""
from __future__ import annotations

import torch
from torch import nn

from uta_bench.errors import UtaBenchError

FEATURES = ("patch", "cls_patch")


class VisionTower(nn.Module):
    def __init__(self, loaded, layer: int = -2, feature: str = "patch"):
        super().__init__()
        if feature not in FEATURES:
            raise UtaBenchError(f"unknown vision feature {feature!r}; use one of {', '.join(FEATURES)}")
        self.loaded_name = loaded.name
        self.autocast = loaded.autocast
        visual = loaded.visual
        self.visual = getattr(visual, "trunk", visual)
        self.feature = feature
        if hasattr(self.visual, "forward_intermediates") and hasattr(self.visual, "blocks"):
            self.kind, n_blocks = "timm", len(self.visual.blocks)
            self.dim = int(self.visual.embed_dim)
            self.num_prefix = int(getattr(self.visual, "num_prefix_tokens", 1))
        elif hasattr(self.visual, "transformer") and hasattr(self.visual.transformer, "resblocks"):
            self.kind, n_blocks = "open_clip", len(self.visual.transformer.resblocks)
            self.dim = int(self.visual.transformer.width)
            self.num_prefix = 1
        else:
            raise UtaBenchError(f"vision tower of {loaded.name} ({type(self.visual).__name__}) has no block "
                                "structure uta-bench knows (timm forward_intermediates or open_clip resblocks)")
        if not -n_blocks <= layer < n_blocks:
            raise UtaBenchError(f"vision layer {layer} out of range for a {n_blocks}-block tower")
        self.layer = layer
        self.block = layer % n_blocks
        self.n_blocks = n_blocks
        for p in self.visual.parameters():
            p.requires_grad_(False)
        self.visual.eval()

    def train(self, mode: bool = True):  # the tower stays in eval mode (frozen, no dropout / drop-path)
        super().train(mode)
        self.visual.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] -> features [B, N, dim] (float32)."""
        with self.autocast():
            if self.kind == "timm":
                (x,) = self.visual.forward_intermediates(images, indices=[self.block], norm=False,
                                                         output_fmt="NLC", intermediates_only=True,
                                                         return_prefix_tokens=self.feature == "cls_patch")
                if isinstance(x, tuple):     # (patch tokens, prefix tokens)
                    x = torch.cat([x[1], x[0]], dim=1)
            else:
                x = self._open_clip(images)
        return x.float()

    def _open_clip(self, images):
        out = {}
        block = self.visual.transformer.resblocks[self.block]

        def hook(_m, _inp, o):
            out["x"] = o[0] if isinstance(o, tuple) else o
            raise _Stop

        h = block.register_forward_hook(hook)
        try:
            self.visual(images)
        except _Stop:
            pass
        finally:
            h.remove()
        x = out["x"]
        if not getattr(self.visual.transformer, "batch_first", True):
            x = x.permute(1, 0, 2)
        return x[:, self.num_prefix:] if self.feature == "patch" else x


class _Stop(Exception):
    """Ends the tower's forward once the selected block has run (later blocks are not needed)."""
