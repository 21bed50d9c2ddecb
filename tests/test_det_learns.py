"""A detector built from a UTA tower learns: Cascade Mask R-CNN (uta_tiny tower, recipes/det/coco_overfit.py)
trained on 4 generated images without augmentation reaches box AP >= 50 on those images, as scored by
pycocotools on the saved detections (and our stored AP equals it). Slow: a few CPU minutes."""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("mmengine")
pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")


@pytest.mark.slow
def test_cascade_mask_rcnn_overfits_a_few_images(tmp_path, one_thread):
    from det_oracles import pycocotools_ap

    from uta_bench.det.evaluate import evaluate_detector
    from uta_bench.det.sample import make_sample_coco
    from uta_bench.det.train import train_detector

    root = make_sample_coco(tmp_path / "sample", n_train=4, n_val=1, size=192)
    t0 = time.perf_counter()
    det = train_detector("coco_overfit", "uta_tiny", work_dir=str(tmp_path / "w"), pretrained=False,
                         data_root=str(root), device="cpu", workers=0)
    print(f"train: {time.perf_counter() - t0:.0f} s for 500 iterations of batch 2")
    res = evaluate_detector("coco_overfit", "uta_tiny", str(det), data_root=str(root), workers=0, progress=False,
                            out_dir=str(tmp_path / "eval"))
    assert res.n_images == 4
    dets = json.loads(res.detections.read_text())
    ref = pycocotools_ap(root / "annotations" / "instances_train2017.json", dets, "bbox")
    print("box AP on the training images (pycocotools):", ref)
    assert res.metrics["bbox"]["ap"] == pytest.approx(ref["ap"], abs=1e-4)
    assert ref["ap"] >= 0.5
