"""Generated COCO/LVIS sample set and the AP path (pycocotools / lvis API); no mmdet needed."""
from __future__ import annotations

import json

import numpy as np
import pytest

from uta_bench.det.metrics import coco_ap, to_coco_results
from uta_bench.det.sample import make_sample_coco


@pytest.fixture(scope="module")
def det_sample(tmp_path_factory):
    return make_sample_coco(tmp_path_factory.mktemp("det") / "sample", n_train=10, n_val=5, size=192)


def _gt_as_dets(ann_file, score=1.0):
    gt = json.load(open(ann_file))
    return [dict(image_id=a["image_id"], category_id=a["category_id"], score=score, bbox=a["bbox"],
                 segmentation=a["segmentation"]) for a in gt["annotations"]]


def test_sample_boxes_masks_are_exact(det_sample):
    from PIL import Image
    from pycocotools import mask as mask_utils

    for split in ("train2017", "val2017"):
        doc = json.load(open(det_sample / "annotations" / f"instances_{split}.json"))
        assert doc["annotations"] and len(doc["categories"]) == 6
        sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
        for im in doc["images"]:
            assert Image.open(det_sample / split / im["file_name"]).size == (im["width"], im["height"])
        for a in doc["annotations"]:
            m = mask_utils.decode(a["segmentation"]).astype(bool)
            assert m.shape == sizes[a["image_id"]]
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert a["area"] == m.sum() > 0
        # occlusion handled: masks of one image never overlap
        by_img = {}
        for a in doc["annotations"]:
            m = mask_utils.decode(a["segmentation"]).astype(int)
            by_img[a["image_id"]] = by_img.get(a["image_id"], 0) + m
        assert max(v.max() for v in by_img.values()) == 1


def test_lvis_variant_frequency_groups(det_sample):
    LVIS = pytest.importorskip("lvis").LVIS  # the lvis API comes with the det extra

    doc = json.load(open(det_sample / "annotations" / "lvis_v1_train.json"))
    coco = json.load(open(det_sample / "annotations" / "instances_train2017.json"))
    cats = doc["categories"]
    assert {c["frequency"] for c in cats} == {"r", "c", "f"}
    for c in cats:  # image_count is the real count of training images holding the category
        assert c["image_count"] == len({a["image_id"] for a in coco["annotations"] if a["category_id"] == c["id"]})
    rank = {"r": 0, "c": 1, "f": 2}
    for lo in cats:  # a rarer group never has more training images than a more frequent one
        for hi in cats:
            if rank[lo["frequency"]] < rank[hi["frequency"]]:
                assert lo["image_count"] <= hi["image_count"]
    gt = LVIS(str(det_sample / "annotations" / "lvis_v1_val.json"))
    im = gt.load_imgs([gt.get_img_ids()[0]])[0]
    assert im["coco_url"].startswith("http://images.cocodataset.org/val2017/")
    present = {a["category_id"] for a in gt.load_anns(gt.get_ann_ids(img_ids=[im["id"]]))}
    assert set(im["neg_category_ids"]) == {c["id"] for c in cats} - present


def test_coco_ap_hand_worked(tmp_path):
    """1 image, 1 class, 2 objects; a false positive outranks the one true positive, the second object is
    missed: precision 1/2 up to recall 1/2, so 101-point AP = 51 * 0.5 / 101 at every IoU threshold."""
    gt = {"images": [{"id": 1, "height": 100, "width": 100, "file_name": "a.jpg"}],
          "categories": [{"id": 7, "name": "x"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20], "area": 400,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 7, "bbox": [60, 60, 30, 30], "area": 900,
                           "iscrowd": 0}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    dets = to_coco_results([[10, 10, 30, 30], [0, 50, 10, 60]], [0.9, 0.95], [0, 0], [7], image_id=1)
    assert dets[0]["bbox"] == [10.0, 10.0, 20.0, 20.0] and dets[0]["category_id"] == 7
    ap = coco_ap(path, dets, iou_types=("bbox",))["bbox"]
    assert ap["ap"] == pytest.approx(51 * 0.5 / 101)
    assert ap["ap50"] == pytest.approx(51 * 0.5 / 101)
    assert coco_ap(path, [], iou_types=("bbox",))["bbox"]["ap"] == 0.0


def test_perfect_and_partial_detections(det_sample):
    ann = det_sample / "annotations" / "instances_val2017.json"
    dets = _gt_as_dets(ann)
    ap = coco_ap(ann, dets)
    assert ap["bbox"]["ap"] == pytest.approx(1.0) and ap["segm"]["ap"] == pytest.approx(1.0)
    # masks passed through RLE encoding of decoded masks round-trip exactly
    from pycocotools import mask as mask_utils

    d0 = dets[0]
    m = mask_utils.decode(d0["segmentation"])
    x, y, w, h = d0["bbox"]
    re = to_coco_results([[x, y, x + w, y + h]], [1.0], [0], [d0["category_id"]], d0["image_id"], masks=[m])[0]
    assert re["segmentation"] == d0["segmentation"]


def test_lvis_ap_groups(det_sample):
    pytest.importorskip("lvis")
    from uta_bench.det.metrics import lvis_ap

    ann = det_sample / "annotations" / "lvis_v1_val.json"
    doc = json.load(open(ann))
    freq = {c["id"]: c["frequency"] for c in doc["categories"]}
    dets = _gt_as_dets(ann)
    perfect = lvis_ap(ann, dets)
    for iou in ("bbox", "segm"):
        r = perfect[iou]
        assert r["ap"] == pytest.approx(1.0)
        assert all(r[k] in (-1.0,) or r[k] == pytest.approx(1.0) for k in ("apr", "apc", "apf"))
    groups_present = {freq[d["category_id"]] for d in dets}
    if "f" in groups_present and len(groups_present) > 1:
        # drop every detection of frequent categories: APf -> 0, the other groups stay perfect
        kept = [d for d in dets if freq[d["category_id"]] != "f"]
        r = lvis_ap(ann, kept, iou_types=("bbox",))["bbox"]
        assert r["apf"] == pytest.approx(0.0)
        for k, g in (("apr", "r"), ("apc", "c")):
            if g in groups_present:
                assert r[k] == pytest.approx(1.0)
        assert 0 < r["ap"] < 1


def _noisy_dets(ann_file, seed=0):
    """Two noisy guesses per object (box jitter, shifted mask, 1 in 5 with a wrong class, random scores)."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    gt = json.load(open(ann_file))
    cats = [c["id"] for c in gt["categories"]]
    dets = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        for k in (1, 2):
            d = rng.normal(0, 0.15 * k * max(w, h), 4)
            m = np.roll(mask_utils.decode(a["segmentation"]), (int(d[1]), int(d[0])), (0, 1))
            rle = mask_utils.encode(np.asfortranarray(m))
            rle["counts"] = rle["counts"].decode("ascii")
            cat = a["category_id"] if rng.random() > 0.2 else int(rng.choice(cats))
            dets.append(dict(image_id=a["image_id"], category_id=cat, score=float(rng.random()),
                             bbox=[x + d[0], y + d[1], max(1.0, w + d[2]), max(1.0, h + d[3])], segmentation=rle))
    return dets


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_ap_equals_pycocotools(det_sample, seed):
    """faster-coco-eval (runtime) vs pycocotools' COCOeval (oracle) on the same noisy detections."""
    from det_oracles import pycocotools_ap

    ann = det_sample / "annotations" / "instances_val2017.json"
    dets = _noisy_dets(ann, seed)
    ours = coco_ap(ann, dets)
    for iou in ("bbox", "segm"):
        ref = pycocotools_ap(ann, dets, iou)
        assert 0.05 < ref["ap"] < 0.95  # a non-trivial score, so the comparison means something
        assert ours[iou] == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_lvis_ap_equals_lvis_api(det_sample, seed):
    """faster-coco-eval in LVIS mode (runtime) vs the lvis API's LVISEval (oracle): AP and APr/APc/APf, with
    more detections in one image than the 300-per-image cap."""
    pytest.importorskip("lvis")
    from det_oracles import lvis_api_ap

    from uta_bench.det.metrics import lvis_ap

    ann = det_sample / "annotations" / "lvis_v1_val.json"
    dets = _noisy_dets(ann, seed)
    # the image with the most categories gets 310 confident false positives of one of them; its other
    # categories' detections score low, so the per-image cap (not a per-category one) drops them
    cats_in = {}
    for d in dets:
        cats_in.setdefault(d["image_id"], set()).add(d["category_id"])
    img = max(cats_in, key=lambda i: len(cats_in[i]))
    fp_cat = min(cats_in[img])
    for d in dets:
        if d["image_id"] == img and d["category_id"] != fp_cat:
            d["score"] *= 0.1
    rng = np.random.default_rng(seed)
    dets += [dict(image_id=img, category_id=fp_cat, score=0.5 + 0.5 * float(s),
                  bbox=[float(rng.uniform(0, 150)), float(rng.uniform(0, 150)), 20.0, 20.0],
                  segmentation=dets[0]["segmentation"]) for s in rng.random(310)]
    ours = lvis_ap(ann, dets)
    for iou in ("bbox", "segm"):
        ref = lvis_api_ap(ann, dets, iou)
        assert 0.02 < ref["ap"] < 0.95
        assert ours[iou] == pytest.approx(ref, abs=1e-4)
