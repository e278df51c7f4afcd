"""Test-time augmentation: horizontal flips and multiple scales, averaging softmax probabilities.

Each view's probabilities are flipped back and resized to the original resolution before the
average, which divides by the number of views (the seed divided by the batch size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from semseg_ros.inference.segmenter import Segmenter


def probabilities(segmenter: Segmenter, image: NDArray[np.uint8], scales: Sequence[float] = (1.0,), flip: bool = False) -> torch.Tensor:
    """(C, H, W) class probabilities at the image's resolution, averaged over scales x flips."""
    height, width = image.shape[:2]
    base_h, base_w = segmenter.input_size
    total: torch.Tensor | None = None
    views = 0
    for scale in scales:
        size = (max(32, round(base_h * scale / 32) * 32), max(32, round(base_w * scale / 32) * 32))
        for mirrored in (False, True) if flip else (False,):
            view = np.ascontiguousarray(image[:, ::-1]) if mirrored else image
            logits = segmenter.logits([view], size=size)
            probs = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False).softmax(dim=1)[0]
            if mirrored:
                probs = probs.flip(-1)
            total = probs if total is None else total + probs
            views += 1
    assert total is not None
    return total / views
