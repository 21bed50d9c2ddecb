"""Zero-shot classification: image features x classifier -> top-k accuracy with 95% CIs."""
from __future__ import annotations

import torch

from uta_bench.stats import wilson_interval
from uta_bench.store import Metric


def topk_predictions(logits: torch.Tensor, k: int = 5) -> torch.Tensor:
    return logits.topk(min(k, logits.shape[1]), dim=1).indices


def accuracy_metrics(logits: torch.Tensor, targets: torch.Tensor, metrics=("top1", "top5")) -> list[Metric]:
    """top-k accuracy (fraction) with Wilson 95% intervals, as store rows."""
    out = []
    n = int(targets.numel())
    for name in metrics:
        k = int(name.removeprefix("top"))
        pred = topk_predictions(logits, k)
        correct = int((pred == targets[:, None]).any(dim=1).sum())
        lo, hi = wilson_interval(correct, n)
        out.append(Metric(name, correct / n if n else float("nan"), n, lo, hi))
    return out
