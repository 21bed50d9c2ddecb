"""mmseg registrations (imports mmseg/mmengine: only import this module when the ``seg`` extra is there).

* ``UTAEvaSeg`` (mmseg MODELS): :class:`uta_bench.seg.backbone.EvaMultiLevel` as an mmseg backbone; its
  weights come from any registered UTA model / checkpoint in ``init_weights`` (the Runner calls it
  before training; evaluation loads the whole segmentor instead).
* ``UTASegLayerDecayConstructor`` (mmseg OPTIM_WRAPPER_CONSTRUCTORS): layer-wise lr decay over the
  timm block names, with the rule mmseg's ``LearningRateDecayOptimizerConstructor`` applies to BEiT.
* ``UTASegMetric`` (mmseg METRICS): aAcc / mIoU / mAcc from :class:`uta_bench.seg.metric.SegConfusion`
  (our own int64 confusion counts), run next to mmseg's ``IoUMetric`` on the same predictions.
"""
from __future__ import annotations

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import METRICS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from uta_bench.seg.backbone import EvaMultiLevel, layer_id
from uta_bench.seg.metric import IGNORE_INDEX, SegConfusion, confusion


@MODELS.register_module(force=True)
class UTAEvaSeg(BaseModule):
    """Backbone: 4 stride-16 maps from a registered model's Eva tower (see EvaMultiLevel)."""

    def __init__(self, model: str, checkpoint: str | None = None, pretrained: bool = True,
                 trust_checkpoint: bool = False, img_size: int = 512, patch_size: int = 16,
                 drop_path_rate: float = 0.0, out_indices=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.net = EvaMultiLevel(model, img_size=img_size, patch_size=patch_size, drop_path_rate=drop_path_rate,
                                 out_indices=out_indices)
        self.source = dict(checkpoint=checkpoint, pretrained=pretrained, trust_checkpoint=trust_checkpoint)
        self.weights_info: dict = {}

    @property
    def num_layers(self) -> int:
        return self.net.num_layers

    def init_weights(self):
        self.weights_info = self.net.load_from_model(**self.source)

    def forward(self, x: torch.Tensor):
        return self.net(x)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
class UTASegLayerDecayConstructor(DefaultOptimWrapperConstructor):
    """lr = base_lr * decay_rate ** (num_layers + 1 - layer_id); no weight decay on 1-D params, biases,
    ``pos_embed`` and ``cls_token``. ``paramwise_cfg = dict(decay_rate=0.9[, num_layers=N])``."""

    def add_params(self, params: list, module, **kwargs) -> None:
        cfg = self.paramwise_cfg or {}
        rate = float(cfg.get("decay_rate", 1.0))
        backbone = getattr(module, "backbone", None)
        num_layers = int(cfg.get("num_layers") or getattr(backbone, "num_layers", 0))
        if num_layers < 1:
            raise ValueError("UTASegLayerDecayConstructor needs paramwise_cfg.num_layers or a UTAEvaSeg backbone")
        groups: dict = {}
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            no_wd = p.ndim == 1 or name.endswith(".bias") or name.split(".")[-1] in ("pos_embed", "cls_token")
            lid = layer_id(name.replace("backbone.net.", "backbone."), num_layers)
            g = groups.get((lid, no_wd))
            if g is None:
                scale = rate ** (num_layers + 1 - lid)
                g = groups[(lid, no_wd)] = {"params": [], "param_names": [], "lr_scale": scale,
                                            "lr": self.base_lr * scale,
                                            "weight_decay": 0.0 if no_wd else self.base_wd}
            g["params"].append(p)
            g["param_names"].append(name)
        params.extend(groups[k] for k in sorted(groups))


@METRICS.register_module(force=True)
class UTASegMetric(BaseMetric):
    """aAcc / mIoU / mAcc (fractions) from int64 confusion counts; per-class IoU kept in ``last``."""

    default_prefix = "uta"

    def __init__(self, ignore_index: int = IGNORE_INDEX, collect_device: str = "cpu", prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.last: dict = {}

    def process(self, data_batch, data_samples) -> None:
        num_classes = len(self.dataset_meta["classes"])
        for s in data_samples:
            pred = s["pred_sem_seg"]["data"].squeeze().cpu().numpy()
            gt = s["gt_sem_seg"]["data"].squeeze().cpu().numpy()
            cm, extra = confusion(pred, gt, num_classes, self.ignore_index)
            self.results.append((np.diag(cm).copy(), cm.sum(0), cm.sum(1) + extra))

    def compute_metrics(self, results: list) -> dict:
        acc = SegConfusion(len(self.dataset_meta["classes"]), self.ignore_index)
        for tp, pred_area, gt_area in results:
            acc.add_counts(tp, pred_area, gt_area)
        out = acc.metrics()
        pc = acc.per_class()
        self.last = {"per_class_iou": {c: (None if np.isnan(v) else float(v))
                                       for c, v in zip(self.dataset_meta["classes"], pc["IoU"])},
                     "images": acc.images}
        out["images"] = acc.images
        return out
