"""Text encoding for CLIP-style towers, truncated to the longest prompt of each batch.

CLIP text towers use causal attention and pool at the EOT token, so the pooled feature depends only
on the tokens up to EOT: running the transformer on ``tokens[:, :L]`` (``L`` = the batch's longest
prompt) gives the same embedding as all 77 positions, at a fraction of the cost. Works for open_clip
``CLIP`` (text modules on the model), ``CustomTextCLIP`` / UTA (``.text`` = ``TextTransformer``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast) + tower.positional_embedding[:length].to(cast)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, "argmax")
    proj = tower.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x.float(), dim=-1) if normalize else x
