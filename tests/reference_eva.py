"""An independent, plain-torch reading of the official UTA forward pass (github.com/jihaonew/UTA,
eva_vit_model: EVAVisionTransformer + TextTransformer), used only to check our timm/open_clip path.

It consumes the *official* state dict directly (q_proj/k_proj/v_proj + q_bias/v_bias, SwiGLU w1/w2/w3 with
ffn_ln, per-model RoPE tables), shares no code with uta_bench, and is deliberately naive.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def rope_tables(head_dim: int, grid: int, pt_seq_len: int = 16, theta: float = 10000.0):
    """VisionRotaryEmbeddingFast(dim=head_dim//2, pt_seq_len=16, ft_seq_len=grid) buffers."""
    dim = head_dim // 2
    inv = [1.0 / theta ** (2 * i / dim) for i in range(dim // 2)]
    rows = []
    for r in range(grid):
        for c in range(grid):
            tr, tc = r / grid * pt_seq_len, c / grid * pt_seq_len
            fr = [tr * f for f in inv for _ in range(2)]
            fc = [tc * f for f in inv for _ in range(2)]
            rows.append(fr + fc)
    freqs = torch.tensor(rows, dtype=torch.float64)
    return freqs.cos().float(), freqs.sin().float()


def _rotate_half(x):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def visual_forward(sd: dict, image: torch.Tensor, depth: int, heads: int, patch: int) -> torch.Tensor:
    g = lambda k: sd["visual." + k]  # noqa: E731
    x = F.conv2d(image, g("patch_embed.proj.weight"), g("patch_embed.proj.bias"), stride=patch)
    b, d = x.shape[0], x.shape[1]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([g("cls_token").expand(b, -1, -1), x], 1) + g("pos_embed")
    cos, sin = g("rope.freqs_cos"), g("rope.freqs_sin")
    hd = d // heads
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (d,), g(p + "norm1.weight"), g(p + "norm1.bias"), 1e-6)
        q = h @ g(p + "attn.q_proj.weight").T + g(p + "attn.q_bias")
        k = h @ g(p + "attn.k_proj.weight").T
        v = h @ g(p + "attn.v_proj.weight").T + g(p + "attn.v_bias")
        q, k, v = (t.reshape(b, -1, heads, hd).transpose(1, 2) for t in (q, k, v))
        q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + _rotate_half(q[:, :, 1:]) * sin], 2)
        k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + _rotate_half(k[:, :, 1:]) * sin], 2)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        a = a.transpose(1, 2).reshape(b, -1, d)
        x = x + a @ g(p + "attn.proj.weight").T + g(p + "attn.proj.bias")
        h = F.layer_norm(x, (d,), g(p + "norm2.weight"), g(p + "norm2.bias"), 1e-6)
        hidden = F.silu(h @ g(p + "mlp.w1.weight").T + g(p + "mlp.w1.bias")) * (
            h @ g(p + "mlp.w2.weight").T + g(p + "mlp.w2.bias"))
        hidden = F.layer_norm(hidden, (hidden.shape[-1],), g(p + "mlp.ffn_ln.weight"), g(p + "mlp.ffn_ln.bias"),
                              1e-6)
        x = x + hidden @ g(p + "mlp.w3.weight").T + g(p + "mlp.w3.bias")
    x = F.layer_norm(x, (d,), g("norm.weight"), g("norm.bias"), 1e-6)
    return x[:, 0] @ g("head.weight").T + g("head.bias")


def text_forward(sd: dict, tokens: torch.Tensor, layers: int, heads: int) -> torch.Tensor:
    g = lambda k: sd["text." + k]  # noqa: E731
    x = g("token_embedding.weight")[tokens] + g("positional_embedding")[: tokens.shape[1]]
    b, n, d = x.shape
    hd = d // heads
    causal = torch.full((n, n), float("-inf")).triu(1)
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (d,), g(p + "ln_1.weight"), g(p + "ln_1.bias"), 1e-5)
        qkv = h @ g(p + "attn.in_proj_weight").T + g(p + "attn.in_proj_bias")
        q, k, v = (t.reshape(b, n, heads, hd).transpose(1, 2) for t in qkv.chunk(3, -1))
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1) + causal).softmax(-1) @ v
        x = x + a.transpose(1, 2).reshape(b, n, d) @ g(p + "attn.out_proj.weight").T + g(p + "attn.out_proj.bias")
        h = F.layer_norm(x, (d,), g(p + "ln_2.weight"), g(p + "ln_2.bias"), 1e-5)
        h = F.gelu(h @ g(p + "mlp.c_fc.weight").T + g(p + "mlp.c_fc.bias"))
        x = x + h @ g(p + "mlp.c_proj.weight").T + g(p + "mlp.c_proj.bias")
    x = F.layer_norm(x, (d,), g("ln_final.weight"), g("ln_final.bias"), 1e-5)
    return x[torch.arange(b), tokens.argmax(-1)] @ g("text_projection")
