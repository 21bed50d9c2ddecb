"""UTA checkpoints as released: an EVA-02-style ViT (RoPE, SwiGLU, sub-LN) + EVA-01-CLIP-g text tower.

The vision tower is timm's :class:`timm.models.eva.Eva`, the text tower open_clip's
:class:`open_clip.transformer.TextTransformer`; nothing is re-implemented. The official checkpoint
(keys ``visual.*``, ``text.*``, ``logit_scale``, github.com/jihaonew/UTA ``eva_vit_model``) is mapped
onto them by :func:`official_to_internal`, a strict, explicit key adapter.
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

# Official constructors (eva_vit_model/eva_vit.py): qkv_bias, rope (intp_freq, pt_hw_seq_len=16),
# naiveswiglu, subln, no mean pooling, num_classes=1024, LayerNorm eps 1e-6.
UTA_ARCHS: dict[str, dict] = {
    "uta_base_p16": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                         mlp_ratio=2.6667),
    "uta_base_p14": dict(img_size=224, patch_size=14, embed_dim=768, depth=12, num_heads=12,
                         mlp_ratio=2.6667),
    "uta_large_p14": dict(img_size=224, patch_size=14, embed_dim=1024, depth=24, num_heads=16,
                          mlp_ratio=2.6667),
    "uta_large_p14_336": dict(img_size=336, patch_size=14, embed_dim=1024, depth=24, num_heads=16,
                              mlp_ratio=2.6667),
    "uta_giant_p14": dict(img_size=224, patch_size=14, embed_dim=1408, depth=40, num_heads=16,
                          mlp_ratio=2.909133333333333),       # g/14@224 (contrastive stage 1, Table 1)
    "uta_giant_p14_336": dict(img_size=336, patch_size=14, embed_dim=1408, depth=40, num_heads=16,
                              mlp_ratio=2.909133333333333),
    # tests / offline demo: same code path, tiny
    "uta_tiny_p16": dict(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2,
                         mlp_ratio=2.6667),
    # offline demo (uta_bench.demo): 32 px world, 4x4 patch grid
    "uta_demo_p8": dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.6667),
}
# text_transformer() in eva_vit_model/transformer.py: EVA-01-CLIP-g text tower
TEXT_CFGS: dict[str, dict] = {
    "default": dict(context_length=77, vocab_size=49408, width=1024, heads=16, layers=24, output_dim=1024),
    "uta_tiny_p16": dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2, output_dim=64),
    "uta_demo_p8": dict(context_length=16, vocab_size=49408, width=64, heads=2, layers=2, output_dim=64),
}
PT_HW_SEQ_LEN = 16  # RoPE reference grid of the official models


def build_visual(arch: str, num_classes: int | None = None, **overrides) -> nn.Module:
    """timm ``Eva`` configured exactly like the official UTA vision tower ``arch``."""
    from timm.models.eva import Eva

    cfg = dict(UTA_ARCHS[arch])
    out_dim = num_classes if num_classes is not None else text_cfg(arch)["output_dim"]
    kwargs = dict(
        qkv_bias=True, qkv_fused=False, swiglu_mlp=True, scale_mlp=True, scale_attn_inner=False,
        use_rot_pos_emb=True, ref_feat_shape=(PT_HW_SEQ_LEN, PT_HW_SEQ_LEN), global_pool="token",
        num_classes=out_dim,
    )
    kwargs.update(cfg)
    kwargs.update(overrides)
    return Eva(**kwargs)


def text_cfg(arch: str) -> dict:
    return TEXT_CFGS.get(arch, TEXT_CFGS["default"])


def build_text(arch: str) -> nn.Module:
    from open_clip.transformer import TextTransformer

    return TextTransformer(**text_cfg(arch))


class UTAModel(nn.Module):
    """``visual`` (timm Eva) + ``text`` (open_clip TextTransformer) + ``logit_scale``."""

    def __init__(self, arch: str):
        super().__init__()
        self.arch = arch
        self.visual = build_visual(arch)
        self.text = build_text(arch)
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.visual(image)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.text(text)
        return F.normalize(x, dim=-1) if normalize else x


# ---------------------------------------------------------------- checkpoint adapter
# official (eva_vit_model) visual key suffix -> timm Eva key suffix. Anything else is unexpected.
_VISUAL_RULES: list[tuple[str, str]] = [
    (r"^attn\.q_bias$", "attn.q_proj.bias"),
    (r"^attn\.v_bias$", "attn.v_proj.bias"),
    (r"^attn\.(q_proj|k_proj|v_proj)\.weight$", r"attn.\1.weight"),
    (r"^attn\.proj\.(weight|bias)$", r"attn.proj.\1"),
    (r"^(norm1|norm2)\.(weight|bias)$", r"\1.\2"),
    (r"^mlp\.w1\.(weight|bias)$", r"mlp.fc1_g.\1"),
    (r"^mlp\.w2\.(weight|bias)$", r"mlp.fc1_x.\1"),
    (r"^mlp\.ffn_ln\.(weight|bias)$", r"mlp.norm.\1"),
    (r"^mlp\.w3\.(weight|bias)$", r"mlp.fc2.\1"),
]
_VISUAL_TOP = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
               "norm.weight", "norm.bias", "head.weight", "head.bias"}
_ROPE_RE = re.compile(r"^(blocks\.\d+\.attn\.)?rope\.(freqs_cos|freqs_sin)$")


def official_to_internal(state_dict: dict[str, torch.Tensor]) -> tuple[dict, list[str], dict]:
    """Map an official UTA state dict to this package's module names.

    Returns ``(converted, unexpected_official_keys, rope_buffers)``. RoPE tables (saved once at
    ``visual.rope.*`` and again per block, since the module is shared) are recomputed by timm and are
    returned separately so callers can check their shape against the model's grid.
    """
    out: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    rope: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == "logit_scale" or key.startswith("text."):
            out[key] = value  # open_clip's TextTransformer uses the official names as they are
            continue
        if not key.startswith("visual."):
            unexpected.append(key)
            continue
        sub = key[len("visual."):]
        if _ROPE_RE.match(sub):
            rope[sub] = value
            continue
        if sub in _VISUAL_TOP:
            out[key] = value
            continue
        m = re.match(r"^blocks\.(\d+)\.(.*)$", sub)
        mapped = None
        if m:
            for pattern, repl in _VISUAL_RULES:
                if re.match(pattern, m.group(2)):
                    mapped = f"visual.blocks.{m.group(1)}." + re.sub(pattern, repl, m.group(2))
                    break
        if mapped is None:
            unexpected.append(key)
        else:
            out[mapped] = value
    return out, unexpected, rope


def internal_to_official(state_dict: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Inverse of :func:`official_to_internal` (writes files in the released layout).

    Used to save pre-trained / fine-tuned students so they load like released checkpoints, and by
    tests to create random-init checkpoints in the official format. RoPE buffers are written the
    way the official code saves them (once at ``visual.rope`` and once per block).
    """
    back = {
        "attn.q_proj.bias": "attn.q_bias", "attn.v_proj.bias": "attn.v_bias",
        "mlp.fc1_g.": "mlp.w1.", "mlp.fc1_x.": "mlp.w2.", "mlp.norm.": "mlp.ffn_ln.", "mlp.fc2.": "mlp.w3.",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("text.attn_mask"):
            continue
        new = key
        if key.startswith("visual.blocks."):
            for a, b in back.items():
                if a in new:
                    new = new.replace(a, b)
                    break
        out[new] = value
    cos, sin = official_rope_tables(arch)
    out["visual.rope.freqs_cos"], out["visual.rope.freqs_sin"] = cos, sin
    for i in range(UTA_ARCHS[arch]["depth"]):
        out[f"visual.blocks.{i}.attn.rope.freqs_cos"] = cos.clone()  # separate tensors: safetensors-safe
        out[f"visual.blocks.{i}.attn.rope.freqs_sin"] = sin.clone()
    return out


def official_rope_tables(arch: str) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables as the official ``VisionRotaryEmbeddingFast`` stores them (interleaved pairs)."""
    cfg = UTA_ARCHS[arch]
    dim = cfg["embed_dim"] // cfg["num_heads"] // 2
    grid = cfg["img_size"] // cfg["patch_size"]
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(grid) / grid * PT_HW_SEQ_LEN
    f = torch.einsum("i,f->if", t, freqs).repeat_interleave(2, dim=-1)   # (grid, dim)
    f = torch.cat([f[:, None, :].expand(grid, grid, dim), f[None, :, :].expand(grid, grid, dim)], -1)
    f = f.reshape(grid * grid, 2 * dim)
    return f.cos(), f.sin()
