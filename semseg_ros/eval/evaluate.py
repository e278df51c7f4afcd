"""Run a model over a validation loader and accumulate the confusion matrix at full GT resolution."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from semseg_ros.eval.metrics import ConfusionMatrix


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear logits resize to (height, width); labels are taken after, never resized themselves."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, list[torch.Tensor]]],
    num_classes: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> ConfusionMatrix:
    """Confusion matrix over all batches (images at network size, masks at full size), summed across ranks."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=device)
    for images, masks in batches:
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(images.to(device, non_blocking=True))
        for index, mask in enumerate(masks):
            mask = mask.to(device)
            height, width = mask.shape[-2:]
            prediction = upsample_logits(logits[index : index + 1].float(), (height, width)).argmax(1)
            matrix.update(mask, prediction)
    matrix.all_reduce()
    model.train(was_training)
    return matrix
