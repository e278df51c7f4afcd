"""Label lidar points from a camera class mask, with occlusion handling. Vectorised numpy.

A point takes the class of the pixel it projects onto. Points behind the camera, closer than
`min_depth`, beyond `max_depth` or outside the image get UNKNOWN (255). With occlusion handling,
a nearest-depth buffer of the projected points marks points whose pixel shows a nearer surface
(a nearer point within a small window on a pixel of the same label) as UNKNOWN instead of giving
them that surface's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from semseg_ros.calibration import Calibration
from semseg_ros.fusion.settings import FusionSettings
from semseg_ros.labels import IGNORE

UNKNOWN = IGNORE


@dataclass
class LabelledPoints:
    labels: NDArray[np.uint8]  # (N,) class id or UNKNOWN
    in_view: NDArray[np.bool_]  # (N,) projects into the image within the depth limits
    occluded: NDArray[np.bool_]  # (N,) in view but behind a nearer surface
    confidence: NDArray[np.uint8] | None  # (N,) mask confidence (0 where unknown)


def depth_buffer(
    rows: NDArray[np.int64], cols: NDArray[np.int64], depth: NDArray[np.floating], shape: tuple[int, int]
) -> NDArray[np.float32]:
    """Per-pixel nearest depth of the projected points (inf where no point lands)."""
    height, width = shape
    buffer = np.full(height * width, np.inf, np.float32)
    order = np.argsort(-depth)  # farthest first: the nearest write wins (equal depths write equal values)
    buffer[(rows * width + cols)[order]] = depth[order]
    return buffer.reshape(height, width)


def hidden_points(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    depth: NDArray[np.floating],
    mask: NDArray[np.uint8],
    window: int,
    tolerance: float,
    ratio: float,
) -> NDArray[np.bool_]:
    """Points whose pixel's label was produced by a nearer surface.

    A point is hidden when a projected point within `window` pixels is nearer by more than
    `tolerance + ratio * depth` and lies on a pixel of the same mask label as the point's own pixel:
    the label there belongs to that nearer surface. Visible background points next to a silhouette
    sit on background-labelled pixels and are kept; points seen through the parallax between lidar
    and camera sit on the occluder's pixels and are dropped.
    """
    height, width = mask.shape
    buffer = depth_buffer(rows, cols, depth, (height, width))
    limit = (depth / (1.0 + ratio) - tolerance).astype(np.float32)  # a neighbour nearer than this hides the point
    # Only points with some nearer neighbour in the window can be hidden: a cheap minimum filter finds them.
    nearest = cv2.erode(buffer, np.ones((2 * window + 1, 2 * window + 1), np.uint8), borderType=cv2.BORDER_REPLICATE) if window else buffer
    candidates = np.flatnonzero(nearest[rows, cols] < limit)
    hidden = np.zeros(len(depth), bool)
    if len(candidates) == 0:
        return hidden
    flat_depth, flat_labels = buffer.ravel(), np.ascontiguousarray(mask).ravel()
    row, col = rows[candidates], cols[candidates]
    own, bound = mask[row, col], limit[candidates]
    found = np.zeros(len(candidates), bool)
    # Neighbours outside the image are clamped onto its border: a pixel of the window checked anyway,
    # so no padded copies of the buffer and the mask are needed.
    for dy in range(-window, window + 1):
        offset_rows = np.clip(row + dy, 0, height - 1) * width
        for dx in range(-window, window + 1):
            index = offset_rows + np.clip(col + dx, 0, width - 1)
            found |= (flat_depth[index] < bound) & (flat_labels[index] == own)
    hidden[candidates] = found
    return hidden


def label_points(
    points: NDArray[np.floating],
    mask: NDArray[np.uint8],
    calibration: Calibration,
    settings: FusionSettings | None = None,
    confidence: NDArray[np.uint8] | None = None,
) -> LabelledPoints:
    """Class per point from `mask` (HxW uint8 class ids) for Nx3 lidar points (metres, lidar frame).

    The mask may have any size: a calibration of known image size is rescaled to it, and one without
    a size (KITTI object, tracking and odometry calib files) is taken as calibrated for the mask.
    """
    settings = settings or FusionSettings()
    height, width = mask.shape[:2]
    rows, cols, depth, in_view = calibration.pixel_indices(points, image_size=(width, height), min_depth=settings.min_depth)
    if settings.max_depth > 0:
        in_view &= depth <= settings.max_depth
    labels = np.full(len(in_view), UNKNOWN, np.uint8)
    labels[in_view] = mask[rows[in_view], cols[in_view]]
    occluded = np.zeros(len(in_view), bool)
    if settings.occlusion and in_view.any():
        r, c, d = rows[in_view], cols[in_view], depth[in_view]
        hidden = hidden_points(r, c, d, mask, settings.occlusion_window, settings.occlusion_tolerance, settings.occlusion_tolerance_ratio)
        occluded[np.flatnonzero(in_view)[hidden]] = True
        labels[occluded] = UNKNOWN
    point_confidence = None
    if confidence is not None:
        point_confidence = np.zeros(len(in_view), np.uint8)
        seen = in_view & ~occluded
        point_confidence[seen] = confidence[rows[seen], cols[seen]]
    return LabelledPoints(labels, in_view, occluded, point_confidence)
