"""Zero-shot classification: image features x classifier -> top-k accuracy with 95% CIs, and
mean per-class recall (clip_benchmark's ``mean_per_class_recall``, sklearn's balanced accuracy)."""
from __future__ import annotations

import math

import torch

from uta_bench.stats import mean_stderr, wilson_interval
from uta_bench.store import Metric

Z95 = 1.959963984540054


def topk_predictions(logits: torch.Tensor, k: int = 5) -> torch.Tensor:
    return logits.topk(min(k, logits.shape[1]), dim=1).indices


def accuracy_metrics(logits: torch.Tensor, targets: torch.Tensor, metrics=("top1", "top5")) -> list[Metric]:
    """top-k accuracy (fraction) with Wilson 95% intervals and lm-eval's standard error, as store rows."""
    out = []
    n = int(targets.numel())
    for name in metrics:
        k = int(name.removeprefix("top"))
        pred = topk_predictions(logits, k)
        correct = int((pred == targets[:, None]).any(dim=1).sum())
        lo, hi = wilson_interval(correct, n)
        p = correct / n if n else float("nan")
        out.append(Metric(name, p, n, lo, hi, extra={"stderr": mean_stderr(p, n)}))
    return out


def mean_per_class_recall(pred1: torch.Tensor, targets: torch.Tensor) -> Metric:
    """Mean over the classes present in ``targets`` of the fraction of their samples predicted right
    (top-1 ``pred1``); classes without samples are left out, as sklearn's balanced_accuracy_score does.

    Standard error: the per-class recalls are independent proportions, so
    se = sqrt(sum_c r_c (1 - r_c) / (n_c - 1)) / C (each term lm-eval's sample-variance stderr, 0 for n_c = 1);
    the 95% interval is the normal one, r +- 1.96 se, clipped to [0, 1]."""
    targets = targets.long()
    n = int(targets.numel())
    if n == 0:
        return Metric("mean_per_class_recall", float("nan"), 0)
    classes, n_c = targets.unique(return_counts=True)
    hits = torch.zeros(int(classes.max()) + 1, dtype=torch.long).index_add_(
        0, targets, (pred1.long() == targets).long())[classes]
    recall = hits.double() / n_c.double()
    value = float(recall.mean())
    var = sum(mean_stderr(float(r), int(c)) ** 2 for r, c in zip(recall.tolist(), n_c.tolist()))
    se = math.sqrt(var) / len(classes)
    lo, hi = max(0.0, value - Z95 * se), min(1.0, value + Z95 * se)
    return Metric("mean_per_class_recall", value, n, lo, hi,
                  extra={"stderr": se, "n_classes_present": int(len(classes))})
