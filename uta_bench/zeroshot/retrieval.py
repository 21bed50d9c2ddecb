"""Zero-shot image-text retrieval: caption features and recall@k in both directions.

Metric names follow clip_benchmark: ``image_retrieval_recall@k`` = text->image (for each caption, is
its image among the top k images), ``text_retrieval_recall@k`` = image->text (for each image, is any
of its captions among the top k captions), as in CLIP-style papers (Table 2). We compute the rank
of the (best) positive exactly, so recall@k for every k and per-sample ranks come from one pass.
"""
from __future__ import annotations

import hashlib
import json
import logging

import torch

from uta_bench.stats import mean_stderr, wilson_interval
from uta_bench.store import Metric

log = logging.getLogger(__name__)
DEFAULT_METRICS = tuple(f"{d}_retrieval_recall@{k}" for d in ("image", "text") for k in (1, 5, 10))


@torch.no_grad()
def caption_features(loaded, captions: list[str], batch_size: int = 256, use_cache: bool = True,
                     progress: bool = False, model_id: str | None = None) -> torch.Tensor:
    """L2-normalised text features of ``captions`` (batched by length, truncated exactly, cached under
    ``model_id``, default :func:`~uta_bench.models.loader.model_identity`)."""
    from uta_bench.models.loader import model_identity
    from uta_bench.zeroshot.classifier import cache_dir, encode_prompts, write_cache_entry

    payload = json.dumps({"model": model_id or model_identity(loaded), "tok": f"{loaded.card.tokenizer}@{loaded.card.context_length}",
                          "captions": hashlib.sha256("\x1e".join(captions).encode()).hexdigest(),
                          "precision": loaded.precision_run, "kind": "captions", "v": 1}, sort_keys=True)
    path = cache_dir() / f"captions-{hashlib.sha256(payload.encode()).hexdigest()}.safetensors"
    if use_cache and path.is_file():
        from safetensors.torch import load

        try:
            return load(path.read_bytes())["feats"]
        except Exception as e:  # noqa: BLE001 - unreadable cache entry: recompute (rewritten atomically)
            log.warning("caption cache entry %s is unreadable (%s: %s); recomputing it", path, type(e).__name__,
                        str(e).splitlines()[0] if str(e) else "")
    out = encode_prompts(loaded, loaded.tokenizer(captions), batch_size=batch_size, progress=progress,
                         label="captions")
    if use_cache:
        from safetensors.torch import save

        write_cache_entry(path, save({"feats": out.contiguous()}))
    return out


@torch.no_grad()
def retrieval_ranks(image_feats: torch.Tensor, text_feats: torch.Tensor, text_image: torch.Tensor,
                    batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(t2i rank per caption, i2t best rank per image): 0 = the positive is ranked first."""
    n_img = image_feats.shape[0]
    t2i = torch.empty(len(text_feats), dtype=torch.long)
    for s in range(0, len(text_feats), batch):
        sc = text_feats[s:s + batch] @ image_feats.T
        pos = sc.gather(1, text_image[s:s + batch, None])
        t2i[s:s + batch] = (sc > pos).sum(1)
    i2t = torch.empty(n_img, dtype=torch.long)
    for s in range(0, n_img, batch):
        sc = image_feats[s:s + batch] @ text_feats.T                   # [B, T]
        own = text_image[None, :] == torch.arange(s, min(s + batch, n_img))[:, None]
        best = sc.masked_fill(~own, float("-inf")).max(1, keepdim=True).values
        i2t[s:s + batch] = (sc > best).sum(1)
    return t2i, i2t


def recall_metrics(t2i: torch.Tensor, i2t: torch.Tensor, metrics=DEFAULT_METRICS) -> list[Metric]:
    out = []
    for name in metrics:
        direction, _, k = name.partition("_retrieval_recall@")
        ranks = t2i if direction == "image" else i2t
        hits = int((ranks < int(k)).sum())
        n = int(ranks.numel())
        lo, hi = wilson_interval(hits, n)
        p = hits / n if n else float("nan")
        out.append(Metric(name, p, n, lo, hi, extra={"stderr": mean_stderr(p, n)}))
    return out
