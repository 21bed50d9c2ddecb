"""Student, frozen teacher and the four pre-training objectives of Table 6.

* **UTA**: the student sees only the unmasked patch tokens + [CLS] (masked tokens are dropped before
  the first block, their RoPE entries with them); loss = negative cosine similarity between the
  student's projected tokens and the teacher's output tokens at the same positions, [CLS] included.
* **MIM**: the student sees every position, masked patches replaced by a learned [MASK] embedding,
  and predicts the teacher's tokens at the masked positions only (EVA-02 style; [CLS] unsupervised).
* **FD**: no mask, every token (with [CLS]) aligned (feature distillation).
* **UTA+MIM**: one pass with [MASK] tokens; alignment on unmasked tokens + [CLS] plus prediction
  on masked tokens (sum of the two mean losses).

Teacher targets are the teacher's *projected* tokens: position 0 is its image embedding (what
zero-shot classification uses), positions 1..N its patch tokens through the same projection. The
student projects all its tokens with its own head, so after training ``student(image)`` (CLS -> head)
lives in the teacher's text-aligned space.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from uta_bench.errors import UtaBenchError

OBJECTIVES = ("uta", "mim", "fd", "uta_mim")
USES_MASK_TOKEN = {"uta": False, "mim": True, "fd": False, "uta_mim": True}


class Student(nn.Module):
    """A timm ``Eva`` (``uta_bench.models.uta.build_visual``) + a [MASK] embedding for MIM."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual
        self.mask_token = nn.Parameter(torch.zeros(1, 1, visual.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None,
                mask_mode: str = "none") -> torch.Tensor:
        """Projected tokens ``[B, 1 + kept, E]``.

        ``mask_mode``: "none" (all tokens), "drop" (UTA: masked patches removed), "token" (MIM:
        masked patches replaced by [MASK]).
        """
        from timm.layers.pos_embed_sincos import apply_keep_indices_nlc

        v = self.visual
        x = v.patch_embed(images)                                   # [B, N, D]
        if mask_mode == "token":
            w = mask.unsqueeze(-1).to(x.dtype)
            x = x * (1 - w) + self.mask_token.to(x.dtype) * w
        x, rope = v._pos_embed(x)                                   # adds [CLS] + abs pos; rope [N, d]
        if mask_mode == "drop":
            keep = keep_indices(mask)                               # [B, K] patch indices
            npt = v.num_prefix_tokens
            patches = torch.gather(x[:, npt:], 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            x = torch.cat([x[:, :npt], patches], 1)
            if rope is not None:
                rope = apply_keep_indices_nlc(x, rope, keep).unsqueeze(1)  # [B, 1, K, d] as timm does
        x = v.norm_pre(x)
        for blk in v.blocks:
            if v.grad_checkpointing and self.training:
                x = checkpoint(blk, x, rope=rope, use_reentrant=False)
            else:
                x = blk(x, rope=rope)
        x = v.norm(x)
        return v.head(v.fc_norm(x))


def keep_indices(mask: torch.Tensor) -> torch.Tensor:
    """Indices of unmasked patches per row (each row keeps the same number), in spatial order."""
    kept = (~mask).sum(1)
    if not bool((kept == kept[0]).all()):
        raise UtaBenchError("every mask of a batch must keep the same number of patches")
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # unmasked (0) first, in order
    return order[:, : int(kept[0])]


# ---------------------------------------------------------------- teacher
class FrozenTeacher(nn.Module):
    """Any registered model's vision tower, frozen, eval mode, no grad -> ``[B, 1 + N, E]``."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual.eval()
        for p in self.visual.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # stays in eval mode whatever the caller does
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        return teacher_tokens(self.visual, images).float()


def teacher_tokens(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """[image embedding, projected patch tokens] of a timm Eva/ViT or an open_clip ViT."""
    if hasattr(visual, "forward_features") and hasattr(visual, "forward_head"):   # timm
        feats = visual.forward_features(images)
        npt = getattr(visual, "num_prefix_tokens", 1)
        pooled = visual.forward_head(feats)
        patches = visual.head(visual.fc_norm(feats[:, npt:]))
        return torch.cat([pooled.unsqueeze(1), patches], 1)
    if hasattr(visual, "_embeds") and hasattr(visual, "_pool"):                    # open_clip
        x = visual.transformer(visual._embeds(images))
        pooled, tokens = visual._pool(x)
        if visual.proj is not None:
            pooled, tokens = pooled @ visual.proj, tokens @ visual.proj
        return torch.cat([pooled.unsqueeze(1), tokens], 1)
    raise UtaBenchError(f"teacher vision tower {type(visual).__name__} does not expose its tokens "
                        "(need a timm ViT/Eva or an open_clip VisionTransformer)")


class CachedTeacher(nn.Module):
    """Targets computed once for a fixed image set (the demo), looked up by sample index."""

    def __init__(self, targets: torch.Tensor):
        super().__init__()
        self.register_buffer("targets", targets, persistent=False)

    def forward(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.targets[indices]


# ---------------------------------------------------------------- losses
def neg_cosine(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of -cos(pred, target) (fp32)."""
    return -F.cosine_similarity(pred.float(), target.float(), dim=-1).mean()


def _masked_select(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Patch tokens (``tokens[:, 1:]``) where ``mask`` is True, flattened to ``[M, E]``."""
    return tokens[:, 1:][mask]


def pretrain_loss(objective: str, student: Student, images: torch.Tensor, targets: torch.Tensor,
                  mask: torch.Tensor | None) -> torch.Tensor:
    """Loss of one batch. ``targets`` = teacher tokens ``[B, 1 + N, E]``; ``mask`` ``[B, N]``."""
    if objective not in OBJECTIVES:
        raise UtaBenchError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    if objective == "fd":
        return neg_cosine(student(images, None, "none"), targets)
    if mask is None:
        raise UtaBenchError(f"objective {objective} needs a mask")
    if objective == "uta":
        pred = student(images, mask, "drop")                                  # [B, 1 + K, E]
        keep = keep_indices(mask)
        tgt = torch.cat([targets[:, :1], torch.gather(
            targets[:, 1:], 1, keep.unsqueeze(-1).expand(-1, -1, targets.shape[-1]))], 1)
        return neg_cosine(pred, tgt)
    pred = student(images, mask, "token")                                     # [B, 1 + N, E]
    mim = neg_cosine(_masked_select(pred, mask), _masked_select(targets, mask))
    if objective == "mim":
        return mim
    visible = torch.cat([pred[:, :1].reshape(-1, pred.shape[-1]), _masked_select(pred, ~mask)])
    visible_t = torch.cat([targets[:, :1].reshape(-1, targets.shape[-1]), _masked_select(targets, ~mask)])
    return neg_cosine(visible, visible_t) + mim
