"""The KITTI road benchmark metric (devkit evaluateRoad.py / seg_utils.py) from road probabilities.

Probabilities are 8-bit (as in the PNGs the devkit reads): p = v / 255 with thresholds t_k = k / 255,
k = 0..255, so `p < t_k` is `v < k`. Counts are summed over all images of a category before the
curve is computed. Perspective-view numbers; the official server scores in bird's-eye view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

THRESHOLDS = np.arange(256) / 255.0


@dataclass
class RoadCounts:
    """FN[k] and FP[k] over thresholds k/255, and the positive/negative pixel totals."""

    fn: NDArray[np.int64] = field(default_factory=lambda: np.zeros(256, np.int64))
    fp: NDArray[np.int64] = field(default_factory=lambda: np.zeros(256, np.int64))
    positives: int = 0
    negatives: int = 0

    def add(self, probability: NDArray[np.uint8], road: NDArray[np.bool_], valid: NDArray[np.bool_] | None = None) -> None:
        """Accumulate one image: uint8 road probability (0..255), GT road mask, valid-pixel mask."""
        if probability.dtype != np.uint8:
            raise ValueError("road probability must be uint8 (probability * 255)")
        valid = np.ones(road.shape, bool) if valid is None else valid
        on_road = probability[road & valid]
        off_road = probability[~road & valid]
        road_hist = np.bincount(on_road.ravel(), minlength=256)
        other_hist = np.bincount(off_road.ravel(), minlength=256)
        self.fn += np.concatenate([[0], np.cumsum(road_hist)[:-1]])  # road with v < k
        self.fp += np.cumsum(other_hist[::-1])[::-1]  # not road with v >= k
        self.positives += int(on_road.size)
        self.negatives += int(off_road.size)

    def merged(self, other: RoadCounts) -> RoadCounts:
        return RoadCounts(self.fn + other.fn, self.fp + other.fp, self.positives + other.positives, self.negatives + other.negatives)


def road_metrics(counts: RoadCounts) -> dict[str, float]:
    """MaxF, AP (11-point), BestThresh and PRE/REC/FPR/FNR at the best threshold (all in [0, 1])."""
    if counts.positives == 0:
        return {k: float("nan") for k in ("MaxF", "AP", "BestThresh", "PRE", "REC", "FPR", "FNR")}
    tp = counts.positives - counts.fn
    recall = tp / counts.positives
    precision = tp / (tp + counts.fp + 1e-10)
    keep = ~((recall == 0) & (precision == 0))
    recall, precision = recall[keep], precision[keep]
    tp, fp, fn, thresholds = tp[keep], counts.fp[keep], counts.fn[keep], THRESHOLDS[keep]
    ap = float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in np.linspace(0, 1, 11)]))
    f = 2 * precision * recall / (precision + recall + 1e-10)
    best = int(np.argmax(f))
    tn = counts.negatives - fp[best]
    return {
        "MaxF": float(f[best]),
        "AP": ap,
        "BestThresh": float(thresholds[best]),
        "PRE": float(precision[best]),
        "REC": float(recall[best]),
        "FPR": float(fp[best] / max(fp[best] + tn, 1)),
        "FNR": float(fn[best] / max(tp[best] + fn[best], 1)),
    }
