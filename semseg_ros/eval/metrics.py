"""Confusion-matrix segmentation metrics, accumulated over a whole set (as the official evaluators do)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray

from semseg_ros.labels import IGNORE


class ConfusionMatrix:
    """Counts per (GT class, predicted class); pixels whose GT is `ignore_index` are skipped.

    The matrix has one extra column for predictions outside the classes (e.g. 255 "unknown"):
    they are false negatives of their GT class and nobody's false positive.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes + 1), dtype=torch.int64, device=device)

    def update(self, target: torch.Tensor, prediction: torch.Tensor) -> None:
        n = self.num_classes
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        prediction = prediction.reshape(-1).to(self.matrix.device, torch.int64)
        keep = (target != self.ignore_index) & (target >= 0) & (target < n)
        prediction = torch.where((prediction >= 0) & (prediction < n), prediction, n)
        index = target[keep] * (n + 1) + prediction[keep]
        self.matrix += torch.bincount(index, minlength=n * (n + 1)).reshape(n, n + 1)

    def all_reduce(self) -> None:
        """Sum over torch.distributed ranks (no-op when not distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix)

    def counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(true positives, false positives, false negatives) per class."""
        return _counts(self.matrix.cpu().numpy())

    def iou(self) -> NDArray[np.float64]:
        """Per-class IoU; NaN where the class is absent from both GT and prediction."""
        return _iou(*self.counts())

    def mean_iou(self) -> float:
        values = self.iou()
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def pixel_accuracy(self) -> float:
        tp, _, fn = self.counts()
        total = int((tp + fn).sum())
        return float(tp.sum() / total) if total else float("nan")

    def grouped_iou(self, groups: Sequence[int]) -> NDArray[np.float64]:
        """IoU of groups of classes (e.g. Cityscapes categories): groups[c] is the group of class c."""
        group_of = np.asarray(groups, dtype=np.int64)
        count = int(group_of.max()) + 1
        columns = np.append(group_of, count)  # the "outside" column stays outside
        merged = np.zeros((count, count + 1), np.int64)
        np.add.at(merged, (group_of[:, None], columns[None, :]), self.matrix.cpu().numpy())
        return _iou(*_counts(merged))


def _counts(matrix: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    n = matrix.shape[0]
    tp = np.diag(matrix[:, :n]).astype(np.int64)
    return tp, matrix[:, :n].sum(axis=0) - tp, matrix.sum(axis=1) - tp


def _iou(tp: NDArray[np.int64], fp: NDArray[np.int64], fn: NDArray[np.int64]) -> NDArray[np.float64]:
    union = tp + fp + fn
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)
