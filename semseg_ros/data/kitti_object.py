"""KITTI object benchmark 3D boxes (label_2): reading them, the points inside, and a mask drawn from them.

Box convention of the KITTI object devkit (readme.txt of devkit_object, and its computeBox3D.m): a label
line is `type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]`; (x, y, z) is
the bottom centre of the box in the rectified camera-0 frame (x right, y down, z forward, metres); l runs
along x, h up from the bottom (-y), w along z before the rotation of `rotation_y` about the camera y axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from semseg_ros.calibration import Calibration
from semseg_ros.errors import SemsegError
from semseg_ros.labels import IGNORE, LabelSet

# KITTI object types and the class names they correspond to, in order of preference, in any label set.
KITTI_TYPE_CLASSES: dict[str, tuple[str, ...]] = {
    "Car": ("car",),
    "Van": ("car",),
    "Truck": ("truck", "car"),
    "Tram": ("train", "car"),
    "Pedestrian": ("person", "pedestrian"),
    "Person_sitting": ("person", "pedestrian"),
    "Cyclist": ("rider", "bicyclist"),
}


@dataclass(frozen=True)
class Box3D:
    type: str
    truncated: float
    occluded: int
    bbox: tuple[float, float, float, float]  # 2D box in the camera-2 image: left, top, right, bottom (pixels)
    height: float  # metres
    width: float
    length: float
    bottom_center: tuple[float, float, float]  # rectified camera frame, metres
    rotation_y: float  # radians about the camera y axis

    def corners_rect(self) -> NDArray[np.float64]:
        """The 8 corners (8x3) in the rectified camera frame, as the devkit's computeBox3D."""
        length, h, w = self.length, self.height, self.width
        x = np.array([length, length, -length, -length, length, length, -length, -length]) / 2
        y = np.array([0, 0, 0, 0, -h, -h, -h, -h], dtype=np.float64)
        z = np.array([w, -w, -w, w, w, -w, -w, w]) / 2
        c, s = np.cos(self.rotation_y), np.sin(self.rotation_y)
        rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        return (rotation @ np.stack([x, y, z])).T + np.asarray(self.bottom_center)

    def contains_rect(self, xyz_rect: NDArray[np.floating], margin: float = 0.0) -> NDArray[np.bool_]:
        """Which Nx3 points (rectified camera frame) lie inside the box grown by `margin` metres."""
        local = np.asarray(xyz_rect, np.float64) - np.asarray(self.bottom_center)
        c, s = np.cos(self.rotation_y), np.sin(self.rotation_y)
        along = local[:, 0] * c - local[:, 2] * s  # rotate by -rotation_y about y
        across = local[:, 0] * s + local[:, 2] * c
        return (
            (np.abs(along) <= self.length / 2 + margin)
            & (np.abs(across) <= self.width / 2 + margin)
            & (local[:, 1] <= margin)
            & (local[:, 1] >= -self.height - margin)
        )


def read_kitti_labels(path: str | Path) -> list[Box3D]:
    """The boxes of one label_2 file, DontCare and Misc included (filter by `type`).

    Raises SemsegError naming the file and line for a line that is not a KITTI object label.
    """
    path = Path(path)
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (15, 16):
            raise SemsegError(f"{path}:{number}: expected 15 or 16 fields of a KITTI object label, got {len(fields)}")
        try:
            values = [float(v) for v in fields[1:15]]
        except ValueError:
            raise SemsegError(f"{path}:{number}: a KITTI label field is not a number") from None
        height, width, length, x, y, z, rotation_y = values[7:14]
        bbox = (values[3], values[4], values[5], values[6])
        boxes.append(Box3D(fields[0], values[0], int(values[1]), bbox, height, width, length, (x, y, z), rotation_y))
    return boxes


def velo_to_rect(points: NDArray[np.floating], calibration: Calibration) -> NDArray[np.float64]:
    """Nx3 lidar points into the rectified camera frame: R_rect @ Tr_velo_to_cam (the devkit chain)."""
    xyz = np.asarray(points, np.float64)[:, :3]
    cam = xyz @ calibration.velo_to_cam[:3, :3].T + calibration.velo_to_cam[:3, 3]
    return cam @ calibration.rectification.T


def rect_to_velo(xyz_rect: NDArray[np.floating], calibration: Calibration) -> NDArray[np.float64]:
    """The inverse of `velo_to_rect` (true inverses: KITTI's rounded rotations are not exactly orthonormal)."""
    cam = np.asarray(xyz_rect, np.float64) @ np.linalg.inv(calibration.rectification).T
    return (cam - calibration.velo_to_cam[:3, 3]) @ np.linalg.inv(calibration.velo_to_cam[:3, :3]).T


def class_for_type(label_set: LabelSet, kitti_type: str) -> int | None:
    """The label set's class id for a KITTI object type (None when it has no such class)."""
    for name in KITTI_TYPE_CLASSES.get(kitti_type, ()):
        try:
            return label_set.class_id(name)
        except KeyError:
            continue
    return None


def box_mask(boxes: list[Box3D], calibration: Calibration, label_set: LabelSet, image_size: tuple[int, int]) -> NDArray[np.uint8]:
    """A class mask (HxW uint8, IGNORE elsewhere) with each box's projected hull filled with its class.

    Far boxes are drawn first so that nearer ones cover them, as in the image. Boxes with a corner
    behind the camera, or of a type the label set lacks, are left out.
    """
    width, height = image_size
    mask = np.full((height, width), IGNORE, np.uint8)
    projection = calibration.projection
    for box in sorted(boxes, key=lambda b: -b.bottom_center[2]):
        class_id = class_for_type(label_set, box.type)
        corners = box.corners_rect()
        if class_id is None or (corners[:, 2] <= 0.1).any():
            continue
        image = np.c_[corners, np.ones(8)] @ projection.T
        hull = cv2.convexHull(np.round(image[:, :2] / image[:, 2:]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, int(class_id))
    return mask
