"""Reference evaluators for the detection tests: pycocotools' COCOeval and the lvis API's LVISEval, run on the
same detections that uta_bench.det.metrics scores with faster-coco-eval (test-only; never on the runtime path)."""
from __future__ import annotations

import contextlib
import io

import numpy as np

LVIS_NAMES = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small", "APm": "ap_medium",
              "APl": "ap_large", "APr": "apr", "APc": "apc", "APf": "apf"}
COCO_NAMES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


@contextlib.contextmanager
def lvis_numpy_compat():
    """lvis 0.5.3 (the latest on PyPI) calls ``np.float``, removed in numpy 1.24; alias it while LVISEval runs."""
    had = "float" in np.__dict__
    if not had:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if not had:
            del np.float


def pycocotools_ap(gt_json, dets, iou: str) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        ev = COCOeval(gt, gt.loadRes([dict(d) for d in dets]), iou)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(COCO_NAMES, map(float, ev.stats[:6])))


def lvis_api_ap(gt_json, dets, iou: str, max_dets: int = 300) -> dict:
    from lvis import LVIS, LVISEval, LVISResults

    with contextlib.redirect_stdout(io.StringIO()):
        gt = LVIS(str(gt_json))
        ev = LVISEval(gt, LVISResults(gt, [dict(d) for d in dets], max_dets=max_dets), iou)
        with lvis_numpy_compat():
            ev.run()
    return {LVIS_NAMES[k]: float(v) for k, v in ev.get_results().items() if k in LVIS_NAMES}
