"""The demo's CLIP teacher: the ``uta_demo`` architecture trained contrastively on the world's captions.

CLIP loss (symmetric InfoNCE, learned temperature) with multi-positive targets: captions that are
identical strings are positives of each other, so the many repeated captions of a small world do
not act as false negatives. AdamW + warm-up/cosine, fp32, seeded.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from uta_bench.models.uta import UTAModel


def clip_loss(img: torch.Tensor, txt: torch.Tensor, caption_ids: torch.Tensor, logit_scale) -> torch.Tensor:
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * img @ txt.t()
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * logits.log_softmax(1), 1).mean()
                  + torch.sum(-target * logits.t().log_softmax(1), 1).mean())


def train_teacher(images: torch.Tensor, captions: list[str], tokenizer, steps: int = 600,
                  batch_size: int = 256, lr: float = 2e-3, seed: int = 0, progress=None,
                  arch: str = "uta_demo_p8") -> tuple[UTAModel, dict]:
    """Returns the trained model (eval mode) and ``{"loss": last, "seconds": ...}``.

    ``progress``: a callable ``advance(n)`` (a rich bar) or None.
    """
    torch.manual_seed(seed)
    model = UTAModel(arch)
    with torch.no_grad():  # timm scales the head init by 1e-3; start from a unit-scale projection
        w = model.visual.head.weight
        w.normal_(0, w.shape[1] ** -0.5)
    uniq = sorted(set(captions))
    cap_id = torch.tensor([uniq.index(c) for c in captions])
    tokens = tokenizer(uniq)                                   # each distinct caption tokenised once
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "token_embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "token_embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))))
    g = torch.Generator().manual_seed(seed)
    model.train()
    t0, loss = time.perf_counter(), torch.tensor(float("nan"))
    for step in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x = images[idx]
        ids = cap_id[idx]
        uniq_ids, inv = torch.unique(ids, return_inverse=True)
        txt = model.encode_text(tokens[uniq_ids])[inv]
        loss = clip_loss(model.encode_image(x), txt, ids, model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            progress(1)
    model.eval()
    return model, {"loss": float(loss.detach()), "seconds": time.perf_counter() - t0, "steps": steps}
