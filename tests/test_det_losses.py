"""Layer-wise lr decay groups and the federated loss (pure torch; no mmdet needed)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from uta_bench.det.backbone import ViTDetBackbone
from uta_bench.det.losses import FederatedSigmoidLoss, layer_decay_param_groups
from uta_bench.det.weights import build_det_tower


def test_layer_decay_groups_on_a_detector_like_module():
    net = torch.nn.Module()
    net.backbone = torch.nn.Module()
    net.backbone.vit = ViTDetBackbone(build_det_tower("uta_tiny"), window_size=4, out_channels=16)
    net.head = torch.nn.Linear(4, 2)
    groups = layer_decay_param_groups(net.named_parameters(), 2, 1e-4, 0.1, 0.5)
    lr = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    t = net.backbone.vit.tower
    assert lr[id(t.patch_embed.proj.weight)] == (pytest.approx(1e-4 * 0.5 ** 3), 0.1)
    assert lr[id(t.pos_embed)] == (pytest.approx(1e-4 * 0.5 ** 3), 0.0)
    assert lr[id(t.blocks[0].attn.q_proj.weight)][0] == pytest.approx(1e-4 * 0.5 ** 2)
    assert lr[id(t.blocks[1].norm1.weight)] == (pytest.approx(1e-4 * 0.5), 0.0)
    assert lr[id(net.backbone.vit.pyramid.stages[0][0].weight)][0] == pytest.approx(1e-4)
    assert lr[id(net.head.weight)] == (pytest.approx(1e-4), 0.1) and lr[id(net.head.bias)][1] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_federated_loss_matches_hand_computation():
    loss = FederatedSigmoidLoss(num_classes=4, image_counts=[100, 1, 1, 1], num_fed_classes=2)
    logits = torch.randn(3, 5)
    labels = torch.tensor([0, 4, 4])  # one positive of class 0, two background RoIs
    torch.manual_seed(3)
    chosen = loss.fed_classes(labels)
    assert 0 in chosen.tolist() and len(chosen) == 2
    torch.manual_seed(3)
    got = loss(logits, labels, avg_factor=3)
    target = torch.zeros(3, 4)
    target[0, 0] = 1
    ref = sum(F.binary_cross_entropy_with_logits(logits[i, c], target[i, c]) for i in range(3) for c in chosen) / 3
    torch.testing.assert_close(got, ref)
    assert loss.get_cls_channels(4) == 5 and torch.allclose(loss.get_activation(logits), logits.sigmoid())


def test_federated_sampling_follows_sqrt_frequency():
    loss = FederatedSigmoidLoss(num_classes=4, image_counts=[1, 10000, 1, 1], num_fed_classes=2)
    labels = torch.tensor([0])
    torch.manual_seed(0)
    hits = sum(1 in loss.fed_classes(labels).tolist() for _ in range(300))
    assert hits > 270  # P(class 1) = 100 / 102 with sqrt weights
