"""Box / mask AP of COCO-format detections: COCO through pycocotools' COCOeval, LVIS through the lvis API's
LVISEval (AP, APr/APc/APf). Needs pycocotools (core dependency) and, for LVIS, ``lvis`` (det extra); no mmdet.

Detections are COCO result dicts: ``{"image_id", "category_id", "score", "bbox": [x, y, w, h],
"segmentation": RLE with str counts}`` (the same list feeds both iou types).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

COCO_STATS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
LVIS_KEYS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small", "APm": "ap_medium",
             "APl": "ap_large", "APr": "apr", "APc": "apc", "APf": "apf"}


def to_coco_results(bboxes_xyxy, scores, labels, cat_ids, image_id: int, masks=None) -> list[dict]:
    """One image's predictions (numpy / torch) -> COCO result dicts. ``labels`` index ``cat_ids``."""
    from pycocotools import mask as mask_utils

    b = np.asarray(bboxes_xyxy, dtype=np.float64).reshape(-1, 4)
    out = []
    for i in range(len(b)):
        x0, y0, x1, y1 = b[i]
        r = {"image_id": int(image_id), "category_id": int(cat_ids[int(labels[i])]), "score": float(scores[i]),
             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
        if masks is not None:
            rle = mask_utils.encode(np.asfortranarray(np.asarray(masks[i], dtype=np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            r["segmentation"] = rle
        out.append(r)
    return out


def coco_ap(gt_json: str | Path, dets: list[dict], iou_types=("bbox", "segm"), quiet: bool = True) -> dict:
    """``{"bbox": {"ap": .., "ap50": .., ...}, "segm": {...}}`` as fractions, from COCOeval.summarize()."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        gt = COCO(str(gt_json))
        out = {}
        for iou in iou_types:
            if not dets:
                out[iou] = {k: 0.0 for k in COCO_STATS}
                continue
            dt = gt.loadRes([dict(d) for d in dets])
            ev = COCOeval(gt, dt, iou)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[iou] = {k: float(v) for k, v in zip(COCO_STATS, ev.stats[:6])}
    return out


@contextlib.contextmanager
def lvis_numpy_compat():
    """lvis 0.5.3 (the latest on PyPI) still calls ``np.float``, removed in numpy 1.24; alias it while LVISEval
    runs (``float`` is exactly what the removed alias meant)."""
    had = "float" in np.__dict__
    if not had:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if not had:
            del np.float


def lvis_ap(gt_json: str | Path, dets: list[dict], iou_types=("bbox", "segm"), max_dets: int = 300,
            quiet: bool = True) -> dict:
    """``{"bbox": {"ap", "apr", "apc", "apf", ...}, "segm": {...}}`` from the lvis API (-1 = undefined)."""
    import logging

    from lvis import LVIS, LVISEval, LVISResults

    sink = io.StringIO()
    lg = logging.getLogger()
    old = lg.level
    if quiet:
        lg.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            gt = LVIS(str(gt_json))
            out = {}
            for iou in iou_types:
                if not dets:
                    out[iou] = {v: 0.0 for v in LVIS_KEYS.values()}
                    continue
                res = LVISResults(gt, [dict(d) for d in dets], max_dets=max_dets)
                ev = LVISEval(gt, res, iou)
                with lvis_numpy_compat():
                    ev.run()
                out[iou] = {LVIS_KEYS[k]: float(v) for k, v in ev.get_results().items() if k in LVIS_KEYS}
    finally:
        lg.setLevel(old)
    return out
