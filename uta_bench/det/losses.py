"""Pure-torch pieces of the detection recipes (registered for mmdet in :mod:`uta_bench.det.mmdet_modules`):
layer-wise lr decay param groups and ViTDet's federated sigmoid loss for LVIS."""
from __future__ import annotations

import json

import torch
import torch.nn as nn
import torch.nn.functional as F

from uta_bench.det.backbone import layer_id


def layer_decay_param_groups(named_params, num_layers: int, base_lr: float, base_wd: float,
                             decay: float) -> list[dict]:
    """ViTDet/BEiT layer-wise lr decay over a detector's ``named_parameters()``.

    A backbone parameter (``backbone.[vit.]...``) with layer id ``i`` (embeddings 0, block k -> k+1, pyramid
    num_layers+1) gets ``base_lr * decay ** (num_layers + 1 - i)``; everything else gets ``base_lr``. No weight
    decay on 1-d tensors (norms, biases), ``pos_embed`` and ``cls_token``.
    """
    groups: dict[tuple, dict] = {}
    for name, p in named_params:
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
        scale = decay ** (num_layers + 1 - lid)
        key = (lid, no_wd)
        if key not in groups:
            groups[key] = {"params": [], "lr": base_lr * scale, "lr_scale": scale,
                           "weight_decay": 0.0 if no_wd else base_wd, "layer_id": lid}
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


class FederatedSigmoidLoss(nn.Module):
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


