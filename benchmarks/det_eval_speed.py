"""COCO / LVIS AP evaluation time: faster-coco-eval (what uta-bench runs) vs pycocotools / the lvis API (the
references), on the same generated detections, in the same run; also checks that the APs agree.

    python benchmarks/det_eval_speed.py [--images 60] [--dets-per-object 20] [--reps 3]

Prints the median seconds of each evaluator (bbox + segm) and the ratio reference / faster-coco-eval.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _dets(ann: Path, per_object: int, seed: int = 0) -> list[dict]:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    gt = json.load(open(ann))
    cats = [c["id"] for c in gt["categories"]]
    out = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        m0 = mask_utils.decode(a["segmentation"])
        for _ in range(per_object):
            d = rng.normal(0, 0.2 * max(w, h), 4)
            rle = mask_utils.encode(np.asfortranarray(np.roll(m0, (int(d[1]), int(d[0])), (0, 1))))
            rle["counts"] = rle["counts"].decode("ascii")
            out.append(dict(image_id=a["image_id"], category_id=int(rng.choice(cats)) if rng.random() < 0.3
                            else a["category_id"], score=float(rng.random()),
                            bbox=[x + d[0], y + d[1], max(1.0, w + d[2]), max(1.0, h + d[3])], segmentation=rle))
    return out


def _time(fn, reps: int):
    times, res = [], None
    for _ in range(reps):
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            res = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--dets-per-object", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("lvis").setLevel(logging.ERROR)
    from det_oracles import lvis_api_ap, pycocotools_ap

    from uta_bench.det.metrics import coco_ap, lvis_ap
    from uta_bench.det.sample import make_sample_coco

    root = make_sample_coco(Path(tempfile.mkdtemp()) / "sample", n_train=8, n_val=args.images, size=256)
    print(f"{'set':6} {'detections':>10} {'reference s':>12} {'faster-coco-eval s':>19} {'ratio':>7} {'max |dAP|':>10}")
    for name, ours, ref, ann in (
            ("COCO", coco_ap, pycocotools_ap, root / "annotations" / "instances_val2017.json"),
            ("LVIS", lvis_ap, lvis_api_ap, root / "annotations" / "lvis_v1_val.json")):
        dets = _dets(ann, args.dets_per_object)
        t_ref, r_ref = _time(lambda: {iou: ref(ann, dets, iou) for iou in ("bbox", "segm")}, args.reps)
        t_ours, r_ours = _time(lambda: ours(ann, dets), args.reps)
        diff = max(abs(r_ours[i][k] - v) for i in r_ref for k, v in r_ref[i].items())
        print(f"{name:6} {len(dets):>10} {t_ref:>12.3f} {t_ours:>19.3f} {t_ref / t_ours:>6.1f}x {diff:>10.1e}")


if __name__ == "__main__":
    main()
