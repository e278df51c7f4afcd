"""Confusion-matrix metrics against a straightforward per-class computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semseg_ros.eval.metrics import ConfusionMatrix
from semseg_ros.labels import IGNORE


def direct_iou(target: np.ndarray, prediction: np.ndarray, classes: int) -> list[float]:
    values = []
    valid = target != IGNORE
    for c in range(classes):
        tp = np.sum((target == c) & (prediction == c) & valid)
        fp = np.sum((target != c) & (prediction == c) & valid)
        fn = np.sum((target == c) & (prediction != c) & valid)
        values.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    return values


@pytest.mark.parametrize("seed", range(5))
def test_iou_matches_direct_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = 6
    matrix = ConfusionMatrix(classes)
    targets, predictions = [], []
    for _ in range(3):
        target = rng.integers(0, classes - 1, (20, 30))  # class 5 never in GT
        target[rng.random(target.shape) < 0.1] = IGNORE
        prediction = rng.integers(0, classes - 2, (20, 30))  # classes 4, 5 never predicted
        prediction[rng.random(prediction.shape) < 0.05] = IGNORE  # "unknown" predictions
        matrix.update(torch.from_numpy(target), torch.from_numpy(prediction))
        targets.append(target)
        predictions.append(prediction)
    target, prediction = np.concatenate(targets), np.concatenate(predictions)
    expected = direct_iou(target, prediction, classes)
    got = matrix.iou()
    assert math.isnan(got[5]) and math.isnan(expected[5])  # absent from GT and prediction: n/a
    np.testing.assert_allclose(got[:5], expected[:5], rtol=0, atol=1e-12)
    assert matrix.mean_iou() == pytest.approx(np.nanmean(expected), abs=1e-12)
    valid = target != IGNORE
    assert matrix.pixel_accuracy() == pytest.approx(np.mean(target[valid] == prediction[valid]), abs=1e-12)


def test_grouped_iou_merges_classes() -> None:
    target = torch.tensor([0, 1, 2, 3, 3, IGNORE])
    prediction = torch.tensor([1, 0, 2, 2, 3, 0])
    matrix = ConfusionMatrix(4)
    matrix.update(target, prediction)
    # groups: {0, 1} -> 0, {2, 3} -> 1: everything is right within its group.
    np.testing.assert_allclose(matrix.grouped_iou([0, 0, 1, 1]), [1.0, 1.0])
