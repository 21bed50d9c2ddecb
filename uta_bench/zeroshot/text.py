"""Text encoding for CLIP-style towers, truncated to the longest prompt of each batch.

CLIP text towers use causal attention and pool at the EOT token, so the pooled feature depends only
on the tokens up to EOT: running the transformer on ``tokens[:, :L]`` (``L`` = the batch's longest
prompt) gives the same embedding as all 77 positions, at a fraction of the cost. Works for open_clip
``CLIP`` (text modules on the model), ``CustomTextCLIP`` / UTA (``.text`` = ``TextTransformer``).

The same causality makes a shared prefix exact to reuse: every prompt of one template starts with the
same tokens (``<sot> a bad photo of a``), whose hidden states do not depend on the class name. They are
computed once per template (:func:`prefix_states`) and the class-dependent rest attends to them
(:func:`encode_suffix`), so each prompt only runs its own tokens through the blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def text_modules(model: torch.nn.Module) -> torch.nn.Module:
    """The module holding token_embedding / positional_embedding / transformer / ln_final."""
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding"):
        return text
    if hasattr(model, "token_embedding"):
        return model
    raise TypeError(f"{type(model).__name__} has no CLIP-style text tower")


def supports_truncation(tower: torch.nn.Module) -> bool:
    """Causal mask, argmax (EOT) pooling and no appended CLS: the cases where truncation is exact."""
    pool = getattr(tower, "pool_type", getattr(tower, "text_pool_type", "argmax"))
    return (getattr(tower, "attn_mask", None) is not None and pool == "argmax"
            and getattr(tower, "cls_emb", None) is None and not getattr(tower, "use_pad_mask", False))


def prompt_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Index of EOT (the largest token id, as CLIP's argmax pooling assumes) + 1, per row."""
    return tokens.argmax(dim=-1) + 1


@torch.no_grad()
def encode_text(model: torch.nn.Module, tokens: torch.Tensor, truncate: bool = True,
                normalize: bool = True) -> torch.Tensor:
    tower = text_modules(model)
    if not truncate or not supports_truncation(tower):
        x = model.encode_text(tokens)
        return F.normalize(x.float(), dim=-1) if normalize else x
    from open_clip.transformer import text_global_pool

    length = int(prompt_lengths(tokens).max())
    tokens = tokens[:, :length]
    x = _embed(tower, tokens)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, "argmax")
    return _project(tower, x, normalize)


def _embed(tower: torch.nn.Module, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Token + positional embeddings of ``tokens`` placed at positions ``start ...``."""
    cast = tower.transformer.get_cast_dtype()
    pos = tower.positional_embedding[start:start + tokens.shape[1]]
    return tower.token_embedding(tokens).to(cast) + pos.to(cast)


def _project(tower: torch.nn.Module, x: torch.Tensor, normalize: bool) -> torch.Tensor:
    proj = tower.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x.float(), dim=-1) if normalize else x


def supports_prefix_sharing(tower: torch.nn.Module) -> bool:
    """Truncation is exact and every block is open_clip's batch-first MultiheadAttention block."""
    from open_clip.transformer import ResidualAttentionBlock

    t = getattr(tower, "transformer", None)
    return (supports_truncation(tower) and getattr(t, "batch_first", False) and not t.grad_checkpointing
            and all(type(b) is ResidualAttentionBlock and isinstance(b.attn, nn.MultiheadAttention)
                    and not hasattr(b, "ln_1_kv") for b in t.resblocks))


def shared_prefix_length(tokens: torch.Tensor) -> int:
    """Leading tokens every row shares, leaving at least the EOT token of the shortest row."""
    same = int((tokens == tokens[:1]).all(dim=0).int().cumprod(0).sum())
    return max(0, min(same, int(prompt_lengths(tokens).min()) - 1))


@torch.no_grad()
def prefix_states(model: torch.nn.Module, prefix: torch.Tensor) -> list[torch.Tensor]:
    """``ln_1`` of each block's input over the prefix tokens (shape [1, p]): the keys/values every
    prompt with this prefix attends to."""
    tower = text_modules(model)
    p = prefix.shape[1]
    x = _embed(tower, prefix)
    states = []
    for blk in tower.transformer.resblocks:
        states.append(blk.ln_1(x))
        x = blk(x, attn_mask=tower.attn_mask[:p, :p])
    return states


@torch.no_grad()
def encode_suffix(model: torch.nn.Module, suffix: torch.Tensor, states: list[torch.Tensor],
                  normalize: bool = True) -> torch.Tensor:
    """Pooled embeddings of ``prefix + suffix`` rows, given the prefix's :func:`prefix_states`;
    ``suffix`` is truncated here to its longest row (the EOT of every row must be in it)."""
    tower = text_modules(model)
    p = states[0].shape[1]
    suffix = suffix[:, :int(prompt_lengths(suffix).max())]
    b, s = suffix.shape
    x = _embed(tower, suffix, start=p)
    mask = tower.attn_mask[p:p + s, :p + s]
    for blk, pre in zip(tower.transformer.resblocks, states):
        h = blk.ln_1(x)
        kv = torch.cat([pre.expand(b, -1, -1).to(h.dtype), h], dim=1)
        x = x + blk.ls_1(blk.attention(q_x=h, k_x=kv, v_x=kv, attn_mask=mask))
        x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
    x = tower.ln_final(x)
    x = x[torch.arange(b, device=x.device), suffix.argmax(dim=-1)]
    return _project(tower, x, normalize)
