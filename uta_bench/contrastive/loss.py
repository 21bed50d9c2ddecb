"""One optimizer step's worth of backward passes for open_clip's ``ClipLoss`` over many micro-batches.

A contrastive loss couples every sample of the batch (each image is scored against every caption), so
summing per-micro-batch losses is *not* the big-batch loss. This follows open_clip's ``accum_freq``
recipe: (1) features of every micro-batch without gradients; (2) for each micro-batch, features again
with gradients, spliced into the cached ones, the loss over the whole batch, backward. Step (2) for
micro-batch ``j`` yields exactly the big-batch gradient that flows through micro-batch ``j``'s
features; the sum over ``j`` is the big-batch gradient. Across processes ``ClipLoss`` gathers the
features of all ranks with gradients (``gather_with_grad``), so the batch is the global batch.
(Both passes must see the same randomness: the recipes use no dropout / drop-path.)
"""
from __future__ import annotations

import contextlib

import torch

from uta_bench.training import backward


def make_clip_loss(rank: int, world_size: int):
    """open_clip's ClipLoss over the *global* batch (features gathered with gradients)."""
    from open_clip.loss import ClipLoss

    return ClipLoss(local_loss=False, gather_with_grad=True, cache_labels=True, rank=rank,
                    world_size=world_size)


def _full(x: torch.Tensor) -> torch.Tensor:
    """Autocast features (bf16/fp16) to fp32 for the loss; fp32/fp64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _no_sync(model, last: bool):
    """DDP: all-reduce gradients once, on the last backward of the step."""
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def accumulated_backward(model, loss_fn, micro_batches, *, logit_scale: float, autocast, scaler=None) -> float:
    """Backward of the contrastive loss of the concatenation of ``micro_batches`` [(images, tokens)].

    ``model(images, tokens)`` -> normalised (image, text) features; ``autocast``: a zero-argument
    context factory. Returns the loss (a float; identical on every rank).
    """
    n = len(micro_batches)
    if n == 1:
        images, tokens = micro_batches[0]
        with autocast():
            img, txt = model(images, tokens)
        loss = loss_fn(_full(img), _full(txt), logit_scale)
        backward(loss, scaler)
        return float(loss.detach())
    cached_img, cached_txt = [], []
    with torch.no_grad():
        for images, tokens in micro_batches:
            with autocast():
                img, txt = model(images, tokens)
            cached_img.append(_full(img))
            cached_txt.append(_full(txt))
    value = None
    for j, (images, tokens) in enumerate(micro_batches):
        with _no_sync(model, last=j == n - 1):
            with autocast():
                img, txt = model(images, tokens)
            all_img = torch.cat(cached_img[:j] + [_full(img)] + cached_img[j + 1:])
            all_txt = torch.cat(cached_txt[:j] + [_full(txt)] + cached_txt[j + 1:])
            loss = loss_fn(all_img, all_txt, logit_scale)
            backward(loss, scaler)
        value = float(loss.detach()) if value is None else value
    return value
