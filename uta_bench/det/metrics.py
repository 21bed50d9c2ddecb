"""Box / mask AP of COCO-format detections through ``faster-coco-eval`` (a maintained, C++-backed COCOeval):
COCO AP (the six summary numbers of COCOeval) and LVIS AP (``lvis_style``: federated ground truth, 300
detections per image, APr/APc/APf). pycocotools and the ``lvis`` API are the parity oracles in the tests
(tests/test_det_metrics.py), not runtime dependencies of this module. No mmdet needed.

Detections are COCO result dicts: ``{"image_id", "category_id", "score", "bbox": [x, y, w, h],
"segmentation": RLE with str counts}`` (the same list feeds both iou types).
"""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)

COCO_STATS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
# faster-coco-eval's stats_as_dict labels -> our metric names
_FCE_KEYS = {"AP_all": "ap", "AP_50": "ap50", "AP_75": "ap75", "AP_small": "ap_small", "AP_medium": "ap_medium",
             "AP_large": "ap_large", "APr": "apr", "APc": "apc", "APf": "apf"}
LVIS_STATS = COCO_STATS + ("apr", "apc", "apf")


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


def top_per_image(dets: list[dict], max_dets: int) -> list[dict]:
    """The ``max_dets`` highest-scoring detections of each image (LVIS caps per image, not per category)."""
    by_img: dict[int, list[dict]] = {}
    for d in dets:
        by_img.setdefault(d["image_id"], []).append(d)
    out = []
    for img_dets in by_img.values():
        out.extend(sorted(img_dets, key=lambda d: -d["score"])[:max_dets])
    return out


def _import_fce():
    try:
        import faster_coco_eval
    except ImportError as e:
        raise UtaBenchError("detection AP needs faster-coco-eval; install the det extra "
                            "(pip install 'uta-bench[det]')") from e
    return faster_coco_eval


def _evaluate(gt_json: str | Path, dets: list[dict], iou_types, *, lvis: bool, max_dets: int) -> dict:
    fce = _import_fce()
    keys = LVIS_STATS if lvis else COCO_STATS
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints "loading annotations..."
        gt = fce.COCO(str(gt_json))
    out = {}
    for iou in iou_types:
        if not dets:
            out[iou] = {k: 0.0 for k in keys}
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes([dict(d) for d in (top_per_image(dets, max_dets) if lvis else dets)])
        ev = fce.COCOeval_faster(gt, dt, iou, lvis_style=lvis, print_function=log.debug)
        if lvis:
            ev.params.maxDets = [max_dets]
        ev.run()
        stats = ev.stats_as_dict
        out[iou] = {_FCE_KEYS[k]: float(v) for k, v in stats.items() if k in _FCE_KEYS}
    return out


def coco_ap(gt_json: str | Path, dets: list[dict], iou_types=("bbox", "segm")) -> dict:
    """``{"bbox": {"ap": .., "ap50": .., ...}, "segm": {...}}`` as fractions (-1 = no ground truth in a group),
    equal to pycocotools' ``COCOeval.stats[:6]`` on the same detections."""
    return _evaluate(gt_json, dets, iou_types, lvis=False, max_dets=100)


def lvis_ap(gt_json: str | Path, dets: list[dict], iou_types=("bbox", "segm"), max_dets: int = 300) -> dict:
    """``{"bbox": {"ap", "apr", "apc", "apf", ...}, "segm": {...}}`` (-1 = undefined), equal to the lvis API's
    ``LVISEval(LVIS(gt), LVISResults(gt, dets, max_dets), iou).get_results()`` on the same detections."""
    return _evaluate(gt_json, dets, iou_types, lvis=True, max_dets=max_dets)


EVALUATOR = "faster_coco_eval.COCOeval_faster"
