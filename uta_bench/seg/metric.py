"""Semantic-segmentation metrics from an integer confusion matrix (numpy; no mmseg needed).

Same definitions as the ADE20K benchmark / mmseg's ``IoUMetric``: pixels whose ground truth is the
ignore index (255, i.e. ADE20K's "other" after ``reduce_zero_label``) are dropped; IoU per class =
TP / (TP + FP + FN); mIoU = mean over classes with a non-empty union (prediction or ground truth);
aAcc = correct / labelled pixels; mAcc = mean over classes present in the ground truth.
Counts are int64, so totals stay exact over the whole validation set.
"""
from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``[num_classes, num_classes]`` counts, rows = ground truth, columns = prediction."""
    pred, gt = np.asarray(pred).reshape(-1).astype(np.int64), np.asarray(gt).reshape(-1).astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has {pred.size} pixels, ground truth {gt.size}")
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    bad = (gt < 0) | (gt >= num_classes)
    if bad.any():
        raise ValueError(f"ground-truth label {int(gt[bad][0])} outside 0..{num_classes - 1} (and not "
                         f"{ignore_index}); is reduce_zero_label set for ADE20K-style 0='other' maps?")
    valid = (pred >= 0) & (pred < num_classes)       # out-of-range predictions count as wrong
    idx = gt[valid] * num_classes + pred[valid]
    cm = np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    if not valid.all():                              # still add them to the ground-truth row totals
        cm_extra = np.bincount(gt[~valid], minlength=num_classes)
        return cm, cm_extra
    return cm, np.zeros(num_classes, dtype=np.int64)


class SegConfusion:
    """Accumulates per-image statistics; ``metrics()`` gives aAcc / mIoU / mAcc and per-class IoU."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.tp = np.zeros(num_classes, np.int64)
        self.pred_area = np.zeros(num_classes, np.int64)
        self.gt_area = np.zeros(num_classes, np.int64)
        self.images = 0

    def add(self, pred, gt) -> None:
        cm, extra = confusion(pred, gt, self.num_classes, self.ignore_index)
        self.add_counts(np.diag(cm), cm.sum(0), cm.sum(1) + extra)

    def add_counts(self, tp, pred_area, gt_area) -> None:
        self.tp += np.asarray(tp, np.int64)
        self.pred_area += np.asarray(pred_area, np.int64)
        self.gt_area += np.asarray(gt_area, np.int64)
        self.images += 1

    def per_class(self) -> dict[str, np.ndarray]:
        union = self.pred_area + self.gt_area - self.tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, self.tp / np.maximum(union, 1), np.nan)
            acc = np.where(self.gt_area > 0, self.tp / np.maximum(self.gt_area, 1), np.nan)
        return {"IoU": iou, "Acc": acc}

    def metrics(self) -> dict[str, float]:
        pc = self.per_class()
        labelled = int(self.gt_area.sum())
        if labelled == 0:
            raise ValueError("no labelled pixels: every ground-truth pixel is the ignore index")
        return {"aAcc": float(self.tp.sum() / labelled), "mIoU": float(np.nanmean(pc["IoU"])),
                "mAcc": float(np.nanmean(pc["Acc"]))}
