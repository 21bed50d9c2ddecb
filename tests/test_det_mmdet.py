"""mmdet integration: recipes (App. A.1), layer decay, pre-flight errors, CPU smoke train -> eval -> store.

Skipped cleanly unless the `det` extra with compiled mmcv ops is installed (scripts/build_mmcv.sh)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("mmengine")
pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")

from uta_bench.det.config import build_config  # noqa: E402
from uta_bench.det.sample import make_sample_coco  # noqa: E402
from uta_bench.errors import NotFoundError  # noqa: E402


@pytest.fixture(scope="module")
def det_root(tmp_path_factory):
    return make_sample_coco(tmp_path_factory.mktemp("detmm") / "sample", n_train=12, n_val=4, size=256)


@pytest.mark.parametrize("recipe,model,lr,dp,ld,bs,iters", [
    ("coco", "uta_b16", 5e-5, 0.1, 0.7, 128, 60000),
    ("coco", "uta_l14", 6e-5, 0.4, 0.8, 128, 60000),
    ("lvis", "uta_b16", 1e-4, 0.1, 0.7, 64, 100000),
    ("lvis", "uta_l14", 1e-4, 0.4, 0.8, 64, 100000),
])
def test_recipes_carry_paper_a1_settings(det_root, tmp_path, recipe, model, lr, dp, ld, bs, iters):
    cfg = build_config(recipe, model, work_dir=str(tmp_path), data_root=str(det_root), world_size=8,
                       pretrained=False)
    assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.paramwise_cfg.layer_decay == ld
    assert cfg.model.backbone.drop_path_rate == dp and cfg.model.backbone.type == "UTAViTDet"
    assert cfg.global_batch_size == bs and cfg.train_dataloader.batch_size == bs // 8
    assert cfg.train_cfg.max_iters == iters
    assert cfg.model.roi_head.type == "CascadeRoIHead" and len(cfg.model.roi_head.bbox_head) == 3  # from mmdet
    assert cfg.model.roi_head.mask_head.num_classes == 6  # from the annotation file
    if recipe == "lvis":
        assert cfg.train_dataloader.dataset.type == "ClassBalancedDataset"
        assert cfg.model.roi_head.bbox_head[0].loss_cls.type == "UTAFederatedLoss"


def test_missing_annotation_file_is_one_line_error(tmp_path):
    with pytest.raises(NotFoundError) as e:
        build_config("coco", "uta_b16", work_dir=str(tmp_path), data_root=str(tmp_path / "nowhere"))
    assert "annotation file" in str(e.value) and "\n" not in str(e.value)
    r = subprocess.run([sys.executable, "-m", "uta_bench", "train", "det", "--model", "uta_tiny", "--recipe",
                        "coco_smoke", "--random-init", "--data-root", str(tmp_path / "nowhere"),
                        "--work-dir", str(tmp_path / "wd")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "wd").exists()  # nothing started


def test_layer_decay_param_groups(det_root, tmp_path):
    from mmengine.registry import init_default_scope

    import uta_bench.det.mmdet_modules  # noqa: F401
    from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

    init_default_scope("mmdet")
    cfg = build_config("coco_smoke", "uta_tiny", work_dir=str(tmp_path), data_root=str(det_root), pretrained=False)
    net = MODELS.build(cfg.model)
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type=cfg.optim_wrapper.constructor,
                                                 optim_wrapper_cfg=dict(type="OptimWrapper",
                                                                        optimizer=cfg.optim_wrapper.optimizer),
                                                 paramwise_cfg=cfg.optim_wrapper.paramwise_cfg))
    opt = ctor(net).optimizer
    base, d, L = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay, 2
    lr_of = {}
    for g in opt.param_groups:
        for p in g["params"]:
            lr_of[id(p)] = (g["lr"], g["weight_decay"])
    t = net.backbone.vit.tower
    assert lr_of[id(t.patch_embed.proj.weight)][0] == pytest.approx(base * d ** 3)
    assert lr_of[id(t.blocks[0].attn.q_proj.weight)][0] == pytest.approx(base * d ** 2)
    assert lr_of[id(t.blocks[1].mlp.fc2.weight)][0] == pytest.approx(base * d)
    assert lr_of[id(net.roi_head.bbox_head[0].fc_cls.weight)] == (pytest.approx(base), 0.1)
    assert lr_of[id(t.pos_embed)][1] == 0.0 and lr_of[id(t.blocks[0].norm1.weight)][1] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len([p for p in net.parameters() if p.requires_grad])
    assert L == len(t.blocks)


@pytest.mark.slow
def test_smoke_train_eval_store(det_root, tmp_path, official_ckpt):
    """Tiny ViTDet from a UTA checkpoint: train a few dozen iterations on CPU, evaluate, rows in the store; the
    stored AP equals pycocotools' own COCOeval run on the saved detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from uta_bench.store import ResultsStore

    ckpt, _ = official_ckpt("uta_tiny_p16")
    wd = tmp_path / "wd"
    base = [sys.executable, "-m", "uta_bench"]
    r = subprocess.run(base + ["train", "det", "--model", "uta_tiny", "--recipe", "coco_smoke", "--checkpoint",
                               str(ckpt), "--data-root", str(det_root), "--work-dir", str(wd), "--iters", "12"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    det = wd / "detector.safetensors"
    assert det.is_file() and "loaded uta_tiny tower weights" in (r.stdout + r.stderr)
    r = subprocess.run(base + ["run", "det", "--model", "uta_tiny", "--recipe", "coco_smoke", "--detector-checkpoint",
                               str(det), "--data-root", str(det_root), "--workers", "0"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    df = ResultsStore().df(task="det_coco")
    rows = {m: v for m, v in zip(df.metric, df.value)}
    assert {"ap_box", "ap_mask", "ap50_box"} <= set(rows)
    assert set(df.paper_table) == {"5"}
    dets_path = json.loads(df.extra_json.iloc[0])["detections"]
    dets = json.load(open(dets_path))
    assert dets, "the detector produced no detections"
    gt = COCO(str(det_root / "annotations" / "instances_val2017.json"))
    for iou, metric in (("bbox", "ap_box"), ("segm", "ap_mask")):
        ev = COCOeval(gt, gt.loadRes(dets), iou)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert rows[metric] == pytest.approx(ev.stats[0], abs=1e-4)  # pycocotools as oracle
    # wrong-size detector checkpoint: one-line error, no rows written
    n_before = len(ResultsStore().df())
    bad = tmp_path / "bad.pt"
    import torch

    torch.save({"backbone.vit.tower.pos_embed": torch.zeros(1, 5, 8)}, bad)
    r = subprocess.run(base + ["run", "det", "--model", "uta_tiny", "--recipe", "coco_smoke", "--detector-checkpoint",
                               str(bad), "--data-root", str(det_root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert len(ResultsStore().df()) == n_before


@pytest.mark.slow
def test_lvis_smoke_train_eval_store(det_root, tmp_path, official_ckpt):
    """LVIS path: repeat-factor sampling + federated loss train, lvis-API eval with frequency groups; the stored
    numbers equal LVISEval run directly on the saved detections."""
    from det_oracles import lvis_api_ap

    from uta_bench.store import ResultsStore

    ckpt, _ = official_ckpt("uta_tiny_p16")
    wd = tmp_path / "wdl"
    base = [sys.executable, "-m", "uta_bench"]
    r = subprocess.run(base + ["train", "det", "--model", "uta_tiny", "--recipe", "lvis_smoke", "--checkpoint",
                               str(ckpt), "--data-root", str(det_root), "--work-dir", str(wd), "--iters", "4"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(base + ["run", "det", "--model", "uta_tiny", "--recipe", "lvis_smoke", "--detector-checkpoint",
                               str(wd / "detector.safetensors"), "--data-root", str(det_root), "--workers", "0"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    df = ResultsStore().df(task="det_lvis")
    rows = dict(zip(df.metric, df.value))
    assert {"ap_box", "ap_mask", "apr_box"} <= set(rows)
    dets = json.load(open(json.loads(df.extra_json.iloc[0])["detections"]))
    res = lvis_api_ap(det_root / "annotations" / "lvis_v1_val.json", dets, "bbox")  # the lvis API as oracle
    assert rows["ap_box"] == pytest.approx(res["ap"], abs=1e-4)
    assert rows["apr_box"] == pytest.approx(res["apr"], abs=1e-4)
