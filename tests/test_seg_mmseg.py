"""UperNet through mmseg (skipped cleanly without the `seg` extra / mmcv ops): recipes inherit mmseg's
configs with App. A.1 numbers, layer decay groups, a CPU smoke train + eval on an ADE20K-layout sample,
and our mIoU == mmseg's IoUMetric on the same predictions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops (scripts/build_mmcv.sh) is not installed")
pytest.importorskip("mmseg", reason="the 'seg' extra (mmsegmentation) is not installed")


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory):
    from uta_bench.seg.ade import make_ade20k_sample

    return make_ade20k_sample(tmp_path_factory.mktemp("ade") / "ADEChallengeData2016", n_train=8, n_val=3,
                              size=96)


@pytest.mark.parametrize("recipe, lr, decay, dpr, idx, dim", [
    ("upernet_uta_b16_ade20k", 6e-5, 0.85, 0.15, (3, 5, 7, 11), 768),
    ("upernet_uta_l14_ade20k", 4e-5, 0.9, 0.2, (7, 11, 15, 23), 1024),
])
def test_recipes_app_a1(recipe, lr, decay, dpr, idx, dim):
    from uta_bench.seg.config import build_config

    cfg = build_config(recipe, data_root="/data/ADEChallengeData2016")
    m = cfg.model
    assert m.backbone.type == "UTAEvaSeg" and m.backbone.drop_path_rate == dpr and tuple(m.backbone.out_indices) == idx
    assert m.neck.type == "Feature2Pyramid" and list(m.neck.rescales) == [4, 2, 1, 0.5]   # strides 4/8/16/32
    assert m.decode_head.type == "UPerHead" and m.decode_head.in_channels == [dim] * 4
    assert m.auxiliary_head.type == "FCNHead" and m.auxiliary_head.loss_decode.loss_weight == 0.4
    assert m.decode_head.num_classes == 150 and m.test_cfg.crop_size == (512, 512)
    assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.paramwise_cfg.decay_rate == decay
    assert cfg.train_cfg.max_iters == 60000 and cfg.train_dataloader.batch_size * 8 == 32
    ds = cfg.train_dataloader.dataset
    assert ds.type == "ADE20KDataset" and ds.data_root == "/data/ADEChallengeData2016"
    assert any(t.type == "RandomCrop" and tuple(t.crop_size) == (512, 512) for t in ds.pipeline)
    assert any(t.type == "LoadAnnotations" and t.reduce_zero_label for t in ds.pipeline)


def test_our_miou_equals_iou_metric_on_random_predictions():
    from mmseg.evaluation import IoUMetric

    from uta_bench.seg.mmseg_modules import UTASegMetric

    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(150)]
    ours, theirs = UTASegMetric(), IoUMetric(iou_metrics=["mIoU"])
    for m in (ours, theirs):
        m.dataset_meta = {"classes": classes}
    for _ in range(5):
        gt = rng.integers(0, 20, (1, 40, 50))
        gt[:, :, :5] = 255
        pred = np.where(rng.random(gt.shape) < 0.6, gt % 150, rng.integers(0, 25, gt.shape))
        sample = {"pred_sem_seg": {"data": torch.from_numpy(pred)}, "gt_sem_seg": {"data": torch.from_numpy(gt)}}
        ours.process({}, [sample])
        theirs.process({}, [sample])
    a, b = ours.compute_metrics(ours.results), theirs.compute_metrics(theirs.results)
    assert round(100 * a["mIoU"], 2) == b["mIoU"] and round(100 * a["aAcc"], 2) == b["aAcc"]
    # per class, unrounded, through mmseg's own formula
    inter, union, pa, la = (sum(x) for x in zip(*theirs.results))
    ref = IoUMetric.total_area_to_metrics(inter, union, pa, la, ["mIoU"])["IoU"]
    got = np.array([np.nan if v is None else v for v in ours.last["per_class_iou"].values()])
    np.testing.assert_allclose(got, ref.numpy() if hasattr(ref, "numpy") else ref, rtol=1e-6, equal_nan=True)


def test_layer_decay_constructor(one_thread):
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS

    from uta_bench.seg.config import build_config

    cfg = build_config("upernet_uta_tiny_smoke")
    from mmengine.registry import DefaultScope

    model = MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope("mmseg"):   # as the Runner does (default_scope='mmseg')
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {n: g["lr"] for g in ow.optimizer.param_groups for n in g["param_names"]}
    wds = {n: g["weight_decay"] for g in ow.optimizer.param_groups for n in g["param_names"]}
    base, r = 1e-3, 0.9                                            # tiny: 2 blocks -> layers 0..3
    assert lrs["backbone.net.eva.pos_embed"] == pytest.approx(base * r ** 3)
    assert lrs["backbone.net.eva.blocks.0.attn.proj.weight"] == pytest.approx(base * r ** 2)
    assert lrs["backbone.net.eva.blocks.1.mlp.fc2.weight"] == pytest.approx(base * r)
    assert lrs["decode_head.conv_seg.weight"] == pytest.approx(base)
    assert wds["backbone.net.eva.pos_embed"] == 0 and wds["decode_head.conv_seg.bias"] == 0
    assert wds["decode_head.conv_seg.weight"] == 0.05
    assert len(lrs) == sum(1 for p in model.parameters() if p.requires_grad)


def test_smoke_train_then_eval_rows(ade_root, tmp_path, one_thread):
    from uta_bench.seg.config import build_config
    from uta_bench.seg.run import eval_seg, train_seg
    from uta_bench.store import ResultsStore

    cfg = build_config("upernet_uta_tiny_smoke", data_root=str(ade_root), work_dir=str(tmp_path / "w"),
                       max_iters=20, seed=0)
    res = train_seg(cfg)
    assert res["exported"] and (tmp_path / "w" / "segmentor.safetensors").is_file()
    cfg = build_config("upernet_uta_tiny_smoke", data_root=str(ade_root), work_dir=str(tmp_path / "e"),
                       pretrained=False)
    run_id, metrics, mm = eval_seg(cfg, res["exported"])
    by = {m.metric: m.value for m in metrics}
    assert 0.0 <= by["mIoU"] <= 1.0 and metrics[0].n == 3
    assert round(100 * by["mIoU"], 2) == round(mm["mIoU"], 2)      # ours == mmseg IoUMetric (float32, 0.01 %)
    df = ResultsStore().df(run_id=run_id)
    assert set(df.metric) == {"mIoU", "aAcc", "mAcc"} and set(df.task) == {"ade20k"}


def test_bad_inputs_fail_before_runner(ade_root, tmp_path):
    from uta_bench.errors import CheckpointError, NotFoundError, UtaBenchError
    from uta_bench.seg.config import build_config
    from uta_bench.seg.run import eval_seg, train_seg

    with pytest.raises(NotFoundError, match="recipe 'nope' not found"):
        build_config("nope")
    with pytest.raises(NotFoundError, match="does not exist"):
        train_seg(build_config("upernet_uta_tiny_smoke", data_root=str(tmp_path / "missing")))
    cfg = build_config("upernet_uta_tiny_smoke", data_root=str(ade_root), work_dir=str(tmp_path / "e"))
    with pytest.raises(UtaBenchError, match="segmentor checkpoint .* does not exist"):
        eval_seg(cfg, str(tmp_path / "none.safetensors"))
    from safetensors.torch import save_file

    save_file({"backbone.net.eva.pos_embed": torch.zeros(1, 5, 64)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit"):
        eval_seg(cfg, str(tmp_path / "bad.safetensors"))
