"""Metric names: the one alias map (uta-bench's names <-> clip_benchmark's and other spellings).

uta-bench stores ``top1``, ``top5`` (top-K), ``mean_per_class_recall``, ``image_retrieval_recall@K``
and ``text_retrieval_recall@K``. clip_benchmark calls the first two ``acc1``/``acc5``; its other names
are the same. Every place that takes a metric name from a user (``check --metrics``, ``results
--metric``, ``compare --metrics``, task cards, the paper mapping) goes through :func:`canonical_metric`;
the ``--output-path`` results JSON writes :func:`clip_benchmark_name` (``acc1``, ``acc5``,
``mean_per_class_recall``, ``image_retrieval_recall@5`` ...).
"""
from __future__ import annotations

import re

METRIC_ALIASES = {
    "acc1": "top1", "top1_acc": "top1", "accuracy": "top1", "acc5": "top5", "top5_acc": "top5",
    "balanced_accuracy": "mean_per_class_recall", "mean_per_class_accuracy": "mean_per_class_recall",
    "miou": "mIoU", "aAcc": "aAcc",
    "bbox_ap": "bbox_mAP", "box_ap": "bbox_mAP", "segm_ap": "segm_mAP", "mask_ap": "segm_mAP",
}
_RECALL = re.compile(r"^(?P<dir>image_to_text|i2t|text_to_image|t2i|text_retrieval|image_retrieval)"
                     r"_(?:R|recall|r)@?(?P<k>\d+)$")
_DIR = {"image_to_text": "text_retrieval", "i2t": "text_retrieval", "text_retrieval": "text_retrieval",
        "text_to_image": "image_retrieval", "t2i": "image_retrieval", "image_retrieval": "image_retrieval"}
_TOPK = re.compile(r"^acc([1-9][0-9]*)$")


def canonical_metric(metric: str) -> str:
    """An accepted spelling -> uta-bench's name (``acc1`` -> ``top1``, ``i2t_R@1`` -> ``text_retrieval_recall@1``)."""
    m = str(metric).split("/")[-1]                  # mmdet/mmseg style "coco/bbox_mAP"
    mm = _RECALL.match(m.replace("recall@", "recall").replace("R@", "R"))
    if mm:
        return f"{_DIR[mm['dir']]}_recall@{mm['k']}"
    topk = _TOPK.match(m)
    if topk:
        return f"top{topk[1]}"
    return METRIC_ALIASES.get(m, METRIC_ALIASES.get(m.lower(), m))


def canonical_metrics(names) -> list[str] | None:
    """:func:`canonical_metric` over a list, order kept, duplicates dropped (None stays None)."""
    if names is None:
        return None
    out: list[str] = []
    for n in names:
        c = canonical_metric(n)
        if c not in out:
            out.append(c)
    return out


def from_clip_benchmark(metric: str) -> str:
    """clip_benchmark's names only (``acc1`` -> ``top1``, ``accK`` -> ``topK``; the rest as they are): what a
    task card accepts besides uta-bench's own names."""
    topk = _TOPK.match(str(metric))
    return f"top{topk[1]}" if topk else str(metric)


def clip_benchmark_name(metric: str) -> str:
    """uta-bench's name -> clip_benchmark's (``top1`` -> ``acc1``, ``top5`` -> ``acc5``; the rest as they are)."""
    c = canonical_metric(metric)
    return re.sub(r"^top([1-9][0-9]*)$", r"acc\1", c)


def outcome_key(metric: str) -> str | None:
    """The per-sample 0/1 outcome a metric averages, as `compare` names it (``top1``/``acc1`` -> ``correct1``,
    ``image_retrieval_recall@5`` as it is); None for metrics that are not a mean over samples
    (``mean_per_class_recall``)."""
    c = canonical_metric(metric)
    topk = re.fullmatch(r"top([1-9][0-9]*)", c)
    if topk:
        return f"correct{topk[1]}"
    if c.startswith(("image_retrieval_recall@", "text_retrieval_recall@")):
        return c
    return None
