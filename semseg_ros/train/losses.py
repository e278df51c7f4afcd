"""Segmentation losses: weighted sums of cross-entropy, Dice, Lovasz-softmax and per-pixel BCE, ignore-aware."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss, LovaszLoss
from torch import nn

from semseg_ros.labels import IGNORE


class PixelBCELoss(nn.Module):
    """Per-pixel sigmoid BCE over one-hot classes (multi-label style), averaged over non-ignored pixels."""

    def __init__(self, ignore_index: int = IGNORE):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        onehot = F.one_hot(torch.where(valid, target, 0), logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").mean(dim=1)
        return (loss * valid).sum() / valid.sum().clamp(min=1)


class SegmentationLoss(nn.Module):
    """sum(weight * term) on the main logits, plus aux_weight times the same on auxiliary logits."""

    def __init__(self, loss_config: Any, ignore_index: int = IGNORE, class_weights: torch.Tensor | None = None):
        super().__init__()
        weights = class_weights
        if weights is None and loss_config.class_weights:
            weights = torch.tensor(loss_config.class_weights, dtype=torch.float32)
        candidates: dict[str, tuple[float, nn.Module]] = {
            "ce": (loss_config.ce, nn.CrossEntropyLoss(weight=weights, ignore_index=ignore_index)),
            "dice": (loss_config.dice, DiceLoss("multiclass", from_logits=True, ignore_index=ignore_index)),
            "lovasz": (loss_config.lovasz, LovaszLoss("multiclass", ignore_index=ignore_index)),
            "bce": (loss_config.bce, PixelBCELoss(ignore_index)),
        }
        self.weights = {name: weight for name, (weight, _) in candidates.items() if weight > 0}
        self.terms = nn.ModuleDict({name: term for name, (weight, term) in candidates.items() if weight > 0})
        self.aux_weight = loss_config.aux_weight

    def forward(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss, {term: value}) for network outputs {"out": logits, "aux": optional logits}."""
        values: dict[str, torch.Tensor] = {}
        for name, term in self.terms.items():
            values[name] = _scalar(term(outputs["out"].float(), target))
            if "aux" in outputs and self.aux_weight > 0:
                values[f"aux_{name}"] = _scalar(term(outputs["aux"].float(), target))
        total = sum(self.weights[n] * v for n, v in values.items() if not n.startswith("aux_"))
        total = total + sum(self.aux_weight * self.weights[n[4:]] * v for n, v in values.items() if n.startswith("aux_"))
        assert isinstance(total, torch.Tensor)
        return total, {n: float(v.detach()) for n, v in values.items()}


def _scalar(value: torch.Tensor) -> torch.Tensor:
    """A loss term as a scalar (some terms return an empty tensor when every pixel is ignored)."""
    return value.sum() if value.numel() == 0 else value.mean()


def enet_class_weights(pixel_counts: torch.Tensor, c: float = 1.02) -> torch.Tensor:
    """ENet class weights 1 / ln(c + frequency), 0 for classes absent from the counts, mean 1 over the rest."""
    frequency = pixel_counts.double() / pixel_counts.sum().clamp(min=1)
    weights = torch.where(pixel_counts > 0, 1.0 / torch.log(c + frequency), torch.zeros_like(frequency))
    present = pixel_counts > 0
    return (weights / weights[present].mean()).float() if present.any() else torch.ones_like(weights).float()
