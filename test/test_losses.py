"""Losses: finite gradients, ignore labels respected, weighted sums."""

from __future__ import annotations

import pytest
import torch

from semseg_ros.labels import IGNORE
from semseg_ros.train.config import LossConfig
from semseg_ros.train.losses import SegmentationLoss

TERMS = ["ce", "dice", "lovasz", "bce"]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 16, 16, requires_grad=True)
    target = torch.randint(0, 4, (2, 16, 16))
    target[:, :4] = IGNORE
    return logits, target


@pytest.mark.parametrize("term", TERMS)
def test_each_term_has_finite_nonzero_gradients(term: str) -> None:
    config = LossConfig(**{t: (1.0 if t == term else 0.0) for t in TERMS})
    logits, target = batch()
    loss, values = SegmentationLoss(config)({"out": logits}, target)
    loss.backward()
    assert set(values) == {term} and torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # Ignored pixels get no gradient and do not change the loss.
    assert logits.grad[:, :, :4].abs().max() == 0
    changed = logits.detach().clone()
    changed[:, :, :4] = torch.randn_like(changed[:, :, :4]) * 10
    assert SegmentationLoss(config)({"out": changed}, target)[0].item() == pytest.approx(loss.item(), rel=1e-5)


def test_weighted_sum_and_aux_and_class_weights() -> None:
    logits, target = batch()
    aux = logits.detach() * 0.5
    loss, values = SegmentationLoss(LossConfig(ce=1.0, dice=0.5, aux_weight=0.4))({"out": logits, "aux": aux}, target)
    expected = values["ce"] + 0.5 * values["dice"] + 0.4 * (values["aux_ce"] + 0.5 * values["aux_dice"])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    weighted = SegmentationLoss(LossConfig(class_weights=[10.0, 1.0, 1.0, 1.0]))({"out": logits}, target)[0]
    assert weighted.item() != pytest.approx(SegmentationLoss(LossConfig())({"out": logits}, target)[0].item())


def test_all_ignored_batch_is_finite() -> None:
    logits = torch.randn(1, 3, 8, 8, requires_grad=True)
    target = torch.full((1, 8, 8), IGNORE)
    for term in ["dice", "lovasz", "bce"]:
        loss, _ = SegmentationLoss(LossConfig(ce=0.0, **{term: 1.0}))({"out": logits}, target)
        assert torch.isfinite(loss)
