"""How well fused point labels find real objects: lidar points against KITTI object boxes (label_2).

recall: of the lidar points inside a Car / Pedestrian / Cyclist (and Van, Truck, ...) box that project into
    the image, the fraction labelled with the class the box's type corresponds to (data.kitti_object).
precision: of the points labelled with an object class (a class some KITTI type corresponds to), the
    fraction inside a box (grown by `margin`) whose type corresponds to that class. Points that project
    into a DontCare rectangle are left out: KITTI leaves objects there unlabelled on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from semseg_ros.calibration import Calibration
from semseg_ros.data.kitti_object import Box3D, class_for_type, velo_to_rect
from semseg_ros.labels import LabelSet


@dataclass
class ObjectPointCounts:
    in_boxes: int = 0  # points inside object boxes, in view
    in_boxes_right: int = 0  # ... labelled with the box's class
    labelled_objects: int = 0  # points labelled with an object class (DontCare areas left out)
    labelled_objects_in_box: int = 0  # ... inside a box of that class

    @property
    def recall(self) -> float:
        return self.in_boxes_right / self.in_boxes if self.in_boxes else float("nan")

    @property
    def precision(self) -> float:
        return self.labelled_objects_in_box / self.labelled_objects if self.labelled_objects else float("nan")

    def __add__(self, other: ObjectPointCounts) -> ObjectPointCounts:
        return ObjectPointCounts(
            self.in_boxes + other.in_boxes,
            self.in_boxes_right + other.in_boxes_right,
            self.labelled_objects + other.labelled_objects,
            self.labelled_objects_in_box + other.labelled_objects_in_box,
        )


def object_point_counts(
    points: NDArray[np.floating],
    labels: NDArray[np.uint8],
    in_view: NDArray[np.bool_],
    boxes: list[Box3D],
    calibration: Calibration,
    label_set: LabelSet,
    margin: float = 0.3,
) -> ObjectPointCounts:
    """Counts for one frame: `labels` (N,) per point as label_points gives them, `in_view` (N,) likewise.

    `points` are Nx3+ lidar coordinates (metres); `calibration` the frame's (its rectification and
    extrinsic place the boxes, its projection the DontCare rectangles).
    """
    rect = velo_to_rect(points, calibration)
    object_classes = {
        c for c in (class_for_type(label_set, t) for t in ("Car", "Van", "Truck", "Tram", "Pedestrian", "Cyclist")) if c is not None
    }
    counts = ObjectPointCounts()
    in_class_box = {c: np.zeros(len(rect), bool) for c in object_classes}
    dont_care = np.zeros(len(rect), bool)
    uv, _ = calibration.project(points)
    for box in boxes:
        class_id = class_for_type(label_set, box.type)
        if box.type == "DontCare":
            left, top, right, bottom = box.bbox
            with np.errstate(invalid="ignore"):  # points behind the camera have NaN pixels
                dont_care |= (uv[:, 0] >= left) & (uv[:, 0] <= right) & (uv[:, 1] >= top) & (uv[:, 1] <= bottom)
        elif class_id is not None:
            inside = box.contains_rect(rect) & in_view
            counts.in_boxes += int(inside.sum())
            counts.in_boxes_right += int((labels[inside] == class_id).sum())
            in_class_box[class_id] |= box.contains_rect(rect, margin)
    for class_id in object_classes:
        labelled = (labels == class_id) & ~dont_care
        counts.labelled_objects += int(labelled.sum())
        counts.labelled_objects_in_box += int((labelled & in_class_box[class_id]).sum())
    return counts
