"""Metric parity with clip_benchmark 1.6's own functions, on generated data in every accepted format.

Same random-init model and images; clip_benchmark runs in fp32 (amp=False) with its own dataset
classes (ImageFolder + its IN-A class mask, ImageNetV2Dataset, ObjectNetDataset, wds, CocoCaptions,
Flickr). Our side builds one 1000-class classifier and slices it for IN-A.
"""
from __future__ import annotations

import json

import pytest

from zs_helpers import TEMPLATES, cb_classification, cb_retrieval, cfg, rows, tiny_on_one_thread, write_card
from uta_bench.data import synthetic as syn
from uta_bench.data.imagenet_meta import imagenet_wnids, subset_wnids
from uta_bench.zeroshot.run import evaluate_loaded


@pytest.fixture(scope="module")
def loaded():
    yield from tiny_on_one_thread()


def _ours(loaded, tmp_path, card_path, **kw):
    run = evaluate_loaded(loaded, [str(card_path)], cfg(tmp_path, [card_path], **kw))
    return rows(run)


def _assert_cls(ours, task, cb):
    assert ours[(task, "top1")].value == pytest.approx(cb["acc1"], abs=1e-12)
    assert ours[(task, "top5")].value == pytest.approx(cb["acc5"], abs=1e-12)


def test_imagenet_a_imagefolder_subset_matches_clip_benchmark(loaded, tmp_path):
    from clip_benchmark.datasets.builder import build_dataset

    root = syn.make_imagefolder(tmp_path / "data" / "ina", subset_wnids("imagenet-a"), per_class=1, size=40)
    card = write_card(tmp_path, "ina", type="classification", dataset={"path": "ina", "labels": "wnid"},
                      classes="clip_benchmark:imagenet1k", class_subset="clip_benchmark:imagenet-a",
                      templates=TEMPLATES, metrics=["top1", "top5"], expected_samples=200)
    ours = _ours(loaded, tmp_path, card)
    ds = build_dataset("imagenet-a", root=str(root), transform=loaded.preprocess)   # its own 200-class mask
    assert len(ds.classes) == 200
    cb = cb_classification(loaded, ds, ds.classes, TEMPLATES)
    _assert_cls(ours, "ina", cb)
    assert ours[("ina", "top1")].n == 200


def test_imagenetv2_layout_matches_clip_benchmark(loaded, tmp_path, monkeypatch):
    from clip_benchmark.datasets import imagenetv2

    classes = [0, 3, 17, 256, 999, 500]
    root = syn.make_imagenetv2(tmp_path / "data" / "v2" / "ImageNetV2-matched-frequency", classes, per_class=2)
    card = write_card(tmp_path, "v2", type="classification",
                      dataset={"path": "v2", "subdirs": ["ImageNetV2-matched-frequency"], "formats": ["imagenetv2"]},
                      classes="clip_benchmark:imagenet1k", templates=TEMPLATES)
    ours = _ours(loaded, tmp_path, card)
    monkeypatch.setattr(imagenetv2, "V2_DATASET_SIZE", 12)   # its size guard would try to download
    ds = imagenetv2.ImageNetV2Dataset(transform=loaded.preprocess, location=str(root.parent))
    from clip_benchmark.datasets.builder import build_dataset  # noqa: F401 - (names come from its json)
    from uta_bench.data.classes import classnames

    cb = cb_classification(loaded, ds, classnames("clip_benchmark:imagenet1k"), TEMPLATES)
    _assert_cls(ours, "v2", cb)


def test_objectnet_layout_matches_clip_benchmark(loaded, tmp_path):
    from clip_benchmark.datasets.objectnet import ObjectNetDataset

    root = syn.make_objectnet(tmp_path / "data" / "objectnet", n_mapped=6, n_unmapped=2, per_class=2)
    card = write_card(tmp_path, "on", type="classification", dataset={"path": "objectnet", "formats": ["objectnet"]},
                      classes="dataset", templates=TEMPLATES)
    ours = _ours(loaded, tmp_path, card)
    ds = ObjectNetDataset(root=str(root), transform=loaded.preprocess)
    assert len(ds) == 12 and len(ds.classes) == 6        # unmapped folders dropped, like the real 113 of 313
    cb = cb_classification(loaded, ds, ds.classes, TEMPLATES)
    _assert_cls(ours, "on", cb)


def test_wds_imagenet_a_matches_clip_benchmark(loaded, tmp_path):
    """clip_benchmark's wds export of IN-A: labels 0..199 index the 200 names in 1000-class order."""
    from clip_benchmark.datasets.builder import build_dataset

    from uta_bench.data.classes import classnames

    pos = {w: i for i, w in enumerate(imagenet_wnids())}
    names200 = [classnames("clip_benchmark:imagenet1k")[pos[w]] for w in subset_wnids("imagenet-a")]
    labels = [0, 199, 5, 5, 100, 42, 7, 150, 3, 60, 61]
    syn.make_wds_classification(tmp_path / "data" / "ina_wds", labels, names200, TEMPLATES, maxcount=4)
    card = write_card(tmp_path, "inaw", type="classification", dataset={"path": "ina_wds", "formats": ["wds"]},
                      classes="clip_benchmark:imagenet1k", class_subset="clip_benchmark:imagenet-a",
                      templates=TEMPLATES)
    ours = _ours(loaded, tmp_path, card)
    ds = build_dataset("wds/ina", root=str(tmp_path / "data" / "ina_wds"), transform=loaded.preprocess)
    assert ds.templates == TEMPLATES
    cb = cb_classification(loaded, ds, ds.classes, ds.templates)
    _assert_cls(ours, "inaw", cb)
    assert ours[("inaw", "top1")].n == len(labels)


RET_METRICS = [f"{d}_retrieval_recall@{k}" for d in ("image", "text") for k in (1, 5, 10)]


def _assert_ret(ours, task, cb):
    for m in RET_METRICS:
        assert ours[(task, m)].value == pytest.approx(cb[m], abs=1e-6), m  # cb: float32 mean


def _ret_card(tmp_path, name, path, formats, annotations=(), image_dirs=("",)):
    return write_card(tmp_path, name, type="retrieval",
                      dataset={"path": path, "formats": formats, "annotations": list(annotations),
                               "image_dirs": list(image_dirs)}, metrics=RET_METRICS)


def test_coco_json_retrieval_matches_clip_benchmark(loaded, tmp_path):
    from clip_benchmark.datasets.builder import build_dataset

    root = syn.make_coco_json(tmp_path / "data" / "coco", n_images=14, per_image=(5, 6))
    card = _ret_card(tmp_path, "coco", "coco", ["coco_json"], ["coco_test_karpathy.json"], ["val2014"])
    ours = _ours(loaded, tmp_path, card)
    ds = build_dataset("mscoco_captions", root=str(root), transform=loaded.preprocess,
                       annotation_file=str(root / "coco_test_karpathy.json"), task="zeroshot_retrieval")
    _assert_ret(ours, "coco", cb_retrieval(loaded, ds))
    assert ours[("coco", "image_retrieval_recall@1")].n == 77          # 7*5 + 7*6 captions


def test_flickr_txt_retrieval_matches_clip_benchmark(loaded, tmp_path):
    from clip_benchmark.datasets.builder import build_dataset

    root = syn.make_flickr_txt(tmp_path / "data" / "flickr", n_images=13)
    card = _ret_card(tmp_path, "fl", "flickr", ["flickr_txt"], ["flickr30k_test_karpathy.txt"])
    ours = _ours(loaded, tmp_path, card)
    ds = build_dataset("flickr30k", root=str(root), transform=loaded.preprocess,
                       annotation_file=str(root / "flickr30k_test_karpathy.txt"), task="zeroshot_retrieval")
    _assert_ret(ours, "fl", cb_retrieval(loaded, ds))


def test_karpathy_json_matches_clip_benchmark_on_same_split(loaded, tmp_path):
    """Karpathy dataset_coco.json (test split only) vs clip_benchmark on a COCO-format file of that split."""
    from clip_benchmark.datasets.builder import build_dataset

    root = syn.make_karpathy(tmp_path / "data" / "kc", n_test=12, n_other=4)
    card = _ret_card(tmp_path, "kc", "kc", ["karpathy_json"], ["dataset_coco.json"], ["val2014"])
    ours = _ours(loaded, tmp_path, card)
    kar = json.loads((root / "dataset_coco.json").read_text())
    test = [im for im in kar["images"] if im["split"] == "test"]
    coco = {"images": [{"id": i, "file_name": im["filename"]} for i, im in enumerate(test)],
            "annotations": [{"id": 10 * i + j, "image_id": i, "caption": s["raw"]}
                            for i, im in enumerate(test) for j, s in enumerate(im["sentences"])]}
    (root / "cb.json").write_text(json.dumps(coco))
    ds = build_dataset("mscoco_captions", root=str(root), transform=loaded.preprocess,
                       annotation_file=str(root / "cb.json"), task="zeroshot_retrieval")
    _assert_ret(ours, "kc", cb_retrieval(loaded, ds))
    assert ours[("kc", "text_retrieval_recall@1")].n == 12


def test_wds_retrieval_matches_clip_benchmark(loaded, tmp_path):
    from clip_benchmark.datasets.builder import build_dataset

    syn.make_wds_retrieval(tmp_path / "data" / "rw", n_images=11, maxcount=4)
    card = _ret_card(tmp_path, "rw", "rw", ["wds"])
    ours = _ours(loaded, tmp_path, card)
    ds = build_dataset("wds/rw", root=str(tmp_path / "data" / "rw"), transform=loaded.preprocess,
                       task="zeroshot_retrieval")
    _assert_ret(ours, "rw", cb_retrieval(loaded, ds))
