"""ViTDet backbone around the UTA vision tower (timm ``Eva``), in plain torch.

The tower is the same :func:`uta_bench.models.uta.build_visual` module the loader builds (built with
``dynamic_img_size=True`` so RoPE and the absolute position embedding follow the input grid), with:

* window attention in most blocks and global attention in a few (``global_blocks``), ViTDet-style;
  windows are zero-padded when the grid is not a multiple of the window;
* RoPE at detection resolution: global blocks use the full grid, window blocks the window grid, both
  rescaled onto the pre-training reference grid (timm ``ref_feat_shape``, EVA's ``intp_freq``);
* the absolute position embedding resampled (bicubic) to the detection grid; the class token is dropped
  (``use_cls_token=False``, ViTDet) unless all blocks are global (used by the 224 px parity check);
* stochastic depth (``drop_path_rate``, linear rule);
* the ViTDet simple feature pyramid from the last block: strides 4/8/16/32 (+ a max-pooled stride 64).

mmdet registration lives in :mod:`uta_bench.det.mmdet_modules` so this module needs only torch + timm.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as grad_ckpt

DET_PATCH = 16  # ViTDet pyramid scales assume a stride-16 trunk; p14 towers get their patch kernel resampled


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dim of an NCHW map."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's pyramid: deconvs / identity / max-pool from one stride-16 map, then 1x1 + 3x3 conv + LN."""

    def __init__(self, in_dim: int, out_channels: int = 256, scales=(4.0, 2.0, 1.0, 0.5), top_block: bool = True):
        super().__init__()
        self.scales = tuple(scales)
        self.stages = nn.ModuleList()
        for s in self.scales:
            if s == 4.0:
                layers, dim = [nn.ConvTranspose2d(in_dim, in_dim // 2, 2, 2), LayerNorm2d(in_dim // 2), nn.GELU(),
                               nn.ConvTranspose2d(in_dim // 2, in_dim // 4, 2, 2)], in_dim // 4
            elif s == 2.0:
                layers, dim = [nn.ConvTranspose2d(in_dim, in_dim // 2, 2, 2)], in_dim // 2
            elif s == 1.0:
                layers, dim = [], in_dim
            elif s == 0.5:
                layers, dim = [nn.MaxPool2d(2, 2)], in_dim
            else:
                raise ValueError(f"unsupported pyramid scale {s}; use 4, 2, 1 or 0.5")
            layers += [nn.Conv2d(dim, out_channels, 1, bias=False), LayerNorm2d(out_channels),
                       nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), LayerNorm2d(out_channels)]
            self.stages.append(nn.Sequential(*layers))
        self.top_block = top_block

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = [stage(x) for stage in self.stages]
        if self.top_block:  # "LastLevelMaxPool": stride 64 for the RPN's fifth anchor level
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)


def default_global_blocks(depth: int, n: int = 4) -> tuple[int, ...]:
    """ViTDet's choice: the last block of each quarter (B: 2,5,8,11; L: 5,11,17,23)."""
    n = min(n, depth)
    return tuple(sorted({(i + 1) * depth // n - 1 for i in range(n)}))


def window_partition(x: torch.Tensor, ws: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nW, ws * ws, C), zero-padding H and W up to multiples of ``ws``."""
    B, H, W, C = x.shape
    ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C), (Hp, Wp)


def window_unpartition(x: torch.Tensor, ws: int, padded: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    Hp, Wp = padded
    H, W = hw
    C = x.shape[-1]
    B = x.shape[0] // ((Hp // ws) * (Wp // ws))
    x = x.view(B, Hp // ws, Wp // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
    return x[:, :H, :W].contiguous()


class ViTDetBackbone(nn.Module):
    """timm ``Eva`` tower + window/global attention + simple feature pyramid.

    ``tower`` must be built with ``dynamic_img_size=True`` (see :func:`uta_bench.det.weights.build_det_tower`).
    """

    def __init__(self, tower: nn.Module, window_size: int = 16, global_blocks=None, out_channels: int = 256,
                 use_cls_token: bool = False, with_pyramid: bool = True, with_cp: bool = False):
        super().__init__()
        if not getattr(tower, "dynamic_img_size", False):
            raise ValueError("ViTDetBackbone needs a tower built with dynamic_img_size=True")
        self.tower = tower
        depth = len(tower.blocks)
        self.global_blocks = tuple(default_global_blocks(depth) if global_blocks is None else global_blocks)
        if any(i < 0 or i >= depth for i in self.global_blocks):
            raise ValueError(f"global_blocks {self.global_blocks} out of range for a {depth}-block tower")
        self.window_size = int(window_size)
        self.use_cls_token = use_cls_token
        if use_cls_token and len(self.global_blocks) != depth:
            raise ValueError("use_cls_token=True needs every block global (a class token has no window)")
        self.with_cp = with_cp
        npt = tower.num_prefix_tokens if use_cls_token else 0
        for blk in tower.blocks:   # RoPE skips the first `num_prefix_tokens` tokens of the sequence
            blk.attn.num_prefix_tokens = npt
        self.embed_dim = tower.embed_dim
        self.pyramid = SimpleFeaturePyramid(tower.embed_dim, out_channels) if with_pyramid else None

    @property
    def num_layers(self) -> int:
        return len(self.tower.blocks)

    def _embed(self, x: torch.Tensor):
        t = self.tower
        x = t.patch_embed(x)                       # (B, H, W, C): dynamic_img_size -> NHWC
        B, H, W, C = x.shape
        npt = t.num_prefix_tokens if not t.no_embed_class else 0
        pos = t.pos_embed
        if pos is not None:
            from timm.layers import resample_abs_pos_embed

            pos = resample_abs_pos_embed(pos, new_size=(H, W), old_size=t.patch_embed.grid_size,
                                         num_prefix_tokens=npt)
        x = x.reshape(B, H * W, C)
        if pos is not None:
            x = x + pos[:, npt:]
        if self.use_cls_token:
            cls = t.cls_token.expand(B, -1, -1)
            if pos is not None and npt:
                cls = cls + pos[:, :npt]
            x = torch.cat([cls, x], dim=1)
        return t.norm_pre(t.pos_drop(x)), (H, W)

    def _window_block(self, blk, x: torch.Tensor, hw: tuple[int, int], rope) -> torch.Tensor:
        """timm ``EvaBlock.forward`` with attention inside windows (ViTDet: norm -> pad/partition -> attention
        -> unpartition); residuals, MLP and stochastic depth act on whole images, as in ViTDet."""
        B, N, C = x.shape
        h, padded = window_partition(blk.norm1(x).view(B, hw[0], hw[1], C), self.window_size)
        a = window_unpartition(blk.attn(h, rope=rope), self.window_size, padded, hw).view(B, N, C)
        if blk.gamma_1 is not None:
            a = blk.gamma_1 * a
        x = x + blk.drop_path1(a)
        m = blk.mlp(blk.norm2(x))
        if blk.gamma_2 is not None:
            m = blk.gamma_2 * m
        return x + blk.drop_path2(m)

    def _run(self, fn, *args):
        if self.with_cp and self.training and args[0].requires_grad:
            return grad_ckpt(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward_tokens(self, x: torch.Tensor, final_norm: bool = False) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch tokens after the last block, (B, H*W, C) (class token removed), and the grid (H, W)."""
        t = self.tower
        x, (H, W) = self._embed(x)
        ws = self.window_size
        rope_global = t.rope.get_embed(shape=(H, W)) if t.rope is not None else None
        rope_window = t.rope.get_embed(shape=(ws, ws)) if t.rope is not None else None
        for i, blk in enumerate(t.blocks):
            if i in self.global_blocks:
                x = self._run(lambda z, b=blk: b(z, rope=rope_global), x)
            else:
                x = self._run(lambda z, b=blk: self._window_block(b, z, (H, W), rope_window), x)
        if final_norm:
            x = t.norm(x)
        if self.use_cls_token:
            x = x[:, t.num_prefix_tokens:]
        return x, (H, W)

    def forward(self, x: torch.Tensor):
        tokens, (H, W) = self.forward_tokens(x)
        fmap = tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dim, H, W)
        return self.pyramid(fmap) if self.pyramid is not None else (fmap,)


def layer_id(name: str, num_layers: int) -> int:
    """ViTDet/BEiT layer id of a backbone parameter name (relative to the backbone):
    embeddings -> 0, tower block i -> i + 1, everything else (pyramid, final norm) -> num_layers + 1."""
    if name.startswith("tower."):
        sub = name[len("tower."):]
        if sub.split(".")[0] in ("cls_token", "pos_embed", "patch_embed", "reg_token"):
            return 0
        if sub.startswith("blocks."):
            return int(sub.split(".")[1]) + 1
    return num_layers + 1
