"""mmdet / mmengine registrations (imported by the recipes through ``custom_imports``).

* ``UTAViTDet`` (mmdet MODELS): :class:`uta_bench.det.backbone.ViTDetBackbone` as an mmdet backbone; weights
  from any registered UTA model / checkpoint are loaded in ``init_weights`` (the Runner calls it before training,
  not for testing, where the detector checkpoint supplies everything).
* ``LN2d`` (mmdet MODELS): channels-first LayerNorm for the ViTDet heads' convs (``norm_cfg=dict(type='LN2d')``).
* ``UTALayerDecayOptimWrapperConstructor`` (mmdet OPTIM_WRAPPER_CONSTRUCTORS): layer-wise lr decay.
* ``UTAFederatedLoss`` (mmdet MODELS): ViTDet's federated sigmoid CE for LVIS (Zhou et al. 2021).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from uta_bench.det.backbone import LayerNorm2d, ViTDetBackbone
from uta_bench.det.losses import FederatedSigmoidLoss, layer_decay_param_groups


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
        params.extend(layer_decay_param_groups(module.named_parameters(), num_layers, self.base_lr, self.base_wd,
                                               self.layer_decay))


@MODELS.register_module(name="UTAFederatedLoss", force=True)
class UTAFederatedLossMM(FederatedSigmoidLoss):
    """Registered form of :class:`uta_bench.det.losses.FederatedSigmoidLoss`."""
