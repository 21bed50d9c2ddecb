"""mmdet / mmengine registrations (imported by the recipes through ``custom_imports``).

* ``UTAViTDet`` (mmdet MODELS): :class:`uta_bench.det.backbone.ViTDetBackbone` as an mmdet backbone; weights
  from any registered UTA model / checkpoint are loaded in ``init_weights`` (the Runner calls it before training,
  not for testing, where the detector checkpoint supplies everything).
* ``LN2d`` (mmdet MODELS): channels-first LayerNorm for the ViTDet heads' convs (``norm_cfg=dict(type='LN2d')``).
* ``UTALayerDecayOptimWrapperConstructor`` (mmdet OPTIM_WRAPPER_CONSTRUCTORS): layer-wise lr decay.
* ``UTAFederatedLoss`` (mmdet MODELS): ViTDet's federated sigmoid CE for LVIS (Zhou et al. 2021).
"""
from __future__ import annotations

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from uta_bench.det.backbone import LayerNorm2d, ViTDetBackbone, layer_id


@MODELS.register_module(name="LN2d", force=True)
class LN2d(LayerNorm2d):
    """``build_norm_layer`` calls ``cls(num_features, **cfg)``."""


@MODELS.register_module(force=True)
class UTAViTDet(BaseModule):
    """ViTDet backbone from a registered UTA model.

    Args:
        model: registered model name (``uta_b16``, ``uta_l14``, ``uta_tiny`` ...) giving the architecture.
        checkpoint: weights file (official layout, as ``uta_bench.load_model(model, checkpoint=...)``);
            None -> the card's weights. Loaded in ``init_weights`` when ``pretrained``.
        pretrained: False -> random init (smoke runs / tests).
        drop_path_rate, window_size, global_blocks, out_channels, with_cp: ViTDet settings.
    """

    def __init__(self, model: str, checkpoint: str | None = None, pretrained: bool = True,
                 trust_checkpoint: bool = False, drop_path_rate: float = 0.1, window_size: int = 16,
                 global_blocks=None, out_channels: int = 256, with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from uta_bench.det.weights import build_det_tower

        self.model_name, self.checkpoint, self.pretrained = model, checkpoint, pretrained
        self.trust_checkpoint = trust_checkpoint
        tower = build_det_tower(model, drop_path_rate=drop_path_rate)
        self.vit = ViTDetBackbone(tower, window_size=window_size, global_blocks=global_blocks,
                                  out_channels=out_channels, with_cp=with_cp)

    @property
    def num_layers(self) -> int:
        return self.vit.num_layers

    def init_weights(self):
        for m in self.vit.pyramid.modules():  # detectron2's c2_msra_fill for the pyramid convs
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.pretrained:
            from mmengine.logging import print_log

            from uta_bench.det.weights import load_tower_weights

            path = load_tower_weights(self.vit.tower, self.model_name, self.checkpoint, self.trust_checkpoint)
            print_log(f"UTAViTDet: loaded {self.model_name} tower weights from {path}", logger="current")
        self._is_init = True

    def forward(self, x: torch.Tensor):
        return self.vit(x)


def _backbone_of(module: nn.Module):
    m = getattr(module, "module", module)  # DDP wrapper
    return getattr(m, "backbone", None)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
class UTALayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """AdamW param groups with ViTDet/BEiT layer-wise lr decay.

    ``paramwise_cfg=dict(layer_decay=0.7)``: a backbone parameter with layer id ``i`` (embeddings 0, block k
    -> k+1, pyramid num_layers+1) gets ``lr * layer_decay ** (num_layers + 1 - i)``; the rest of the detector
    gets ``lr``. No weight decay on biases, norms (1-d tensors), ``pos_embed`` and ``cls_token``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.layer_decay = float(paramwise_cfg.pop("layer_decay", 1.0))
        self.num_layers = paramwise_cfg.pop("num_layers", None)
        super().__init__(optim_wrapper_cfg, paramwise_cfg or None)
        self.paramwise_cfg = {"layer_decay": self.layer_decay}  # non-empty -> base __call__ uses add_params

    def add_params(self, params: list, module: nn.Module, prefix: str = "", is_dcn_module=None) -> None:
        backbone = _backbone_of(module)
        num_layers = self.num_layers or getattr(backbone, "num_layers", 0)
        groups: dict[tuple, dict] = {}
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            name = name[len("module."):] if name.startswith("module.") else name
            if name.startswith("backbone."):
                sub = name[len("backbone."):]
                sub = sub[len("vit."):] if sub.startswith("vit.") else sub
                lid = layer_id(sub, num_layers)
            else:
                lid = num_layers + 1
            no_wd = p.ndim == 1 or name.endswith(".bias") or name.endswith("pos_embed") or name.endswith("cls_token")
            scale = self.layer_decay ** (num_layers + 1 - lid)
            key = (lid, no_wd)
            if key not in groups:
                groups[key] = {"params": [], "lr": self.base_lr * scale, "lr_scale": scale,
                               "weight_decay": 0.0 if no_wd else self.base_wd, "layer_id": lid}
            groups[key]["params"].append(p)
        params.extend(groups[k] for k in sorted(groups))


@MODELS.register_module(force=True)
class UTAFederatedLoss(nn.Module):
    """Federated sigmoid cross-entropy (ViTDet LVIS): per image-batch, the loss covers the classes present
    plus ``num_fed_classes`` classes sampled with weight ``image_count ** freq_weight_power``.

    Class weights come from ``ann_file`` (LVIS json; categories sorted by id, as mmdet's LVIS datasets order
    labels) or ``image_counts``. Logits have ``num_classes + 1`` channels (last: background, trained as
    all-negative); scores are sigmoids.
    """

    def __init__(self, num_classes: int, ann_file: str | None = None, image_counts=None,
                 num_fed_classes: int = 50, freq_weight_power: float = 0.5, loss_weight: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        self.num_fed_classes = num_fed_classes
        self.loss_weight = loss_weight
        if image_counts is None:
            if ann_file is None:
                raise ValueError("UTAFederatedLoss needs ann_file or image_counts")
            with open(ann_file) as f:
                cats = sorted(json.load(f)["categories"], key=lambda c: c["id"])
            image_counts = [c.get("image_count", 1) for c in cats]
        if len(image_counts) != num_classes:
            raise ValueError(f"UTAFederatedLoss: {len(image_counts)} class counts for {num_classes} classes")
        w = torch.tensor(image_counts, dtype=torch.float).clamp(min=1) ** freq_weight_power
        self.register_buffer("fed_weight", w, persistent=False)
        self.custom_cls_channels = True
        self.custom_activation = True
        self.custom_accuracy = True

    def get_cls_channels(self, num_classes: int) -> int:
        return num_classes + 1

    def get_activation(self, cls_score: torch.Tensor) -> torch.Tensor:
        return cls_score.sigmoid()

    def get_accuracy(self, cls_score: torch.Tensor, labels: torch.Tensor) -> dict:
        pos = labels < self.num_classes
        if not pos.any():
            return {"acc": cls_score.new_tensor(0.0)}
        pred = cls_score[pos, :-1].argmax(-1)
        return {"acc": (pred == labels[pos]).float().mean() * 100}

    def fed_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """Classes the loss sees: the batch's positives + samples by frequency weight (without replacement)."""
        pos = labels[labels < self.num_classes].unique()
        if self.num_fed_classes <= len(pos):
            return pos
        prob = self.fed_weight.clone().to(labels.device)
        prob[pos] = 0
        n = min(self.num_fed_classes - len(pos), int((prob > 0).sum()))
        sampled = torch.multinomial(prob, n, replacement=False) if n > 0 else pos.new_zeros(0)
        return torch.cat([pos, sampled]).unique()

    def forward(self, cls_score, labels, label_weights=None, avg_factor=None, reduction_override=None):
        n = cls_score.shape[0]
        if n == 0:
            return cls_score.sum() * 0
        target = F.one_hot(labels.clamp(max=self.num_classes), self.num_classes + 1).float()[:, :-1]
        loss = F.binary_cross_entropy_with_logits(cls_score[:, :-1], target, reduction="none")
        mask = torch.zeros(self.num_classes, device=cls_score.device)
        mask[self.fed_classes(labels)] = 1.0
        loss = loss * mask
        if label_weights is not None:
            loss = loss * label_weights.float()[:, None]
        denom = avg_factor if avg_factor is not None else n
        return self.loss_weight * loss.sum() / max(float(denom), 1.0)


def lr_scales(optimizer) -> list[tuple[int, float]]:
    """(layer_id, lr_scale) of each param group (for reports/tests)."""
    return sorted({(g.get("layer_id", -1), g.get("lr_scale", math.nan)) for g in optimizer.param_groups})
