"""The KITTI calibration chain: lidar points to camera pixels and depth.

One `Calibration` serves every source (KITTI raw calib files, KITTI object/odometry
calib files, a CameraInfo P matrix plus a lidar-to-camera extrinsic). A lidar point X
(homogeneous) lands in the image at

    x = P_rect @ R_rect(4x4) @ Tr_velo_to_cam(4x4) @ X,   u = x0 / x2,  v = x1 / x2,

valid only where the depth x2 is positive. Pixel centres sit at integer coordinates:
the pixel (row, col) covers u in [col - 0.5, col + 0.5) and v in [row - 0.5, row + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from semseg_ros.errors import CalibrationError

FloatArray = NDArray[np.float64]

RAW_CAM_TO_CAM = "calib_cam_to_cam.txt"
RAW_VELO_TO_CAM = "calib_velo_to_cam.txt"
RAW_IMU_TO_VELO = "calib_imu_to_velo.txt"


def read_calib_file(path: str | Path) -> dict[str, list[str]]:
    """Read a KITTI `key: v1 v2 ...` file into raw string tokens per key."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file not found")
    entries: dict[str, list[str]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read calibration file ({exc})") from exc
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            entries[key.strip()] = value.split()
    return entries


def _matrix(entries: dict[str, list[str]], path: Path, keys: tuple[str, ...], shape: tuple[int, int]) -> FloatArray:
    """The first of `keys` present, parsed and checked as a finite matrix of `shape`."""
    key = next((k for k in keys if k in entries), None)
    if key is None:
        found = ", ".join(sorted(entries)) or "none"
        raise CalibrationError(f"{path}: no '{keys[0]}' entry (keys found: {found})")
    tokens = entries[key]
    expected = shape[0] * shape[1]
    if len(tokens) != expected:
        raise CalibrationError(f"{path}: '{key}' has {len(tokens)} values, expected {expected} ({shape[0]}x{shape[1]})")
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError as exc:
        raise CalibrationError(f"{path}: '{key}' holds a value that is not a number ({exc})") from exc
    if not np.all(np.isfinite(values)):
        raise CalibrationError(f"{path}: '{key}' holds a non-finite value")
    return values.reshape(shape)


def _rigid(rotation: FloatArray, translation: FloatArray) -> FloatArray:
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = translation.ravel()
    return transform


def _check_camera(camera: int) -> None:
    if camera not in (0, 1, 2, 3):
        raise CalibrationError(f"camera index {camera} is not one of KITTI's cameras 0, 1, 2, 3")


@dataclass(frozen=True, eq=False)
class Calibration:
    """Projection of lidar points into one rectified camera.

    projection: 3x4 rectified projection matrix of the camera (P_rect_0X / PX / CameraInfo.p).
    rectification: 3x3 rectifying rotation of the reference camera (R_rect_00 / R0_rect; identity
        when the extrinsic already points into the rectified frame).
    velo_to_cam: 4x4 rigid transform from the lidar frame to the reference camera frame.
    image_size: (width, height) the projection was calibrated for, when known.
    """

    projection: FloatArray
    rectification: FloatArray
    velo_to_cam: FloatArray
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name, shape in (("projection", (3, 4)), ("rectification", (3, 3)), ("velo_to_cam", (4, 4))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise CalibrationError(f"calibration {name} has shape {value.shape}, expected {shape}")
            if not np.all(np.isfinite(value)):
                raise CalibrationError(f"calibration {name} holds a non-finite value")
            object.__setattr__(self, name, value)
        for name, rotation in (("rectification", self.rectification), ("velo_to_cam rotation", self.velo_to_cam[:3, :3])):
            error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
            if error > 1e-2:
                raise CalibrationError(f"calibration {name} is not a rotation (R Rᵀ deviates from I by {error:.3g})")
        if abs(np.linalg.det(self.velo_to_image[:, :3])) < 1e-12:
            raise CalibrationError("calibration projection is degenerate (its left 3x3 block is singular)")
        if self.image_size is not None:
            width, height = (int(v) for v in self.image_size)
            if width <= 0 or height <= 0:
                raise CalibrationError(f"calibration image size {self.image_size} must be positive")
            object.__setattr__(self, "image_size", (width, height))

    # ----------------------------------------------------------------- sources
    @classmethod
    def from_kitti_raw(cls, calib_dir: str | Path, camera: int = 2) -> Calibration:
        """From a KITTI raw date folder (calib_cam_to_cam.txt and calib_velo_to_cam.txt)."""
        _check_camera(camera)
        calib_dir = Path(calib_dir)
        cam_path, velo_path = calib_dir / RAW_CAM_TO_CAM, calib_dir / RAW_VELO_TO_CAM
        cam, velo = read_calib_file(cam_path), read_calib_file(velo_path)
        size = _matrix(cam, cam_path, (f"S_rect_0{camera}",), (1, 2)) if f"S_rect_0{camera}" in cam else None
        return cls(
            projection=_matrix(cam, cam_path, (f"P_rect_0{camera}",), (3, 4)),
            rectification=_matrix(cam, cam_path, ("R_rect_00",), (3, 3)),
            velo_to_cam=_rigid(_matrix(velo, velo_path, ("R",), (3, 3)), _matrix(velo, velo_path, ("T",), (3, 1))),
            image_size=None if size is None else (round(size[0, 0]), round(size[0, 1])),
        )

    @classmethod
    def from_kitti_object(cls, path: str | Path, camera: int = 2, image_size: tuple[int, int] | None = None) -> Calibration:
        """From a KITTI object/tracking (P0-P3, R0_rect, Tr_velo_to_cam) or odometry (P0-P3, Tr) file."""
        _check_camera(camera)
        path = Path(path)
        entries = read_calib_file(path)
        projection = _matrix(entries, path, (f"P{camera}", f"P_rect_0{camera}"), (3, 4))
        if "Tr" in entries and not any(k in entries for k in ("R0_rect", "R_rect", "Tr_velo_to_cam", "Tr_velo_cam")):
            rectification, velo_to_cam = np.eye(3), np.vstack([_matrix(entries, path, ("Tr",), (3, 4)), [0, 0, 0, 1]])
        else:
            rectification = _matrix(entries, path, ("R0_rect", "R_rect"), (3, 3))
            velo_to_cam = np.vstack([_matrix(entries, path, ("Tr_velo_to_cam", "Tr_velo_cam"), (3, 4)), [0, 0, 0, 1]])
        return cls(projection, rectification, velo_to_cam, image_size)

    @classmethod
    def from_projection(cls, projection: FloatArray, lidar_to_camera: FloatArray, image_size: tuple[int, int] | None = None) -> Calibration:
        """From a CameraInfo-style 3x4 P and a 4x4 lidar-to-(rectified) camera extrinsic."""
        return cls(np.asarray(projection, float).reshape(3, 4), np.eye(3), np.asarray(lidar_to_camera, float), image_size)

    # ------------------------------------------------------------ projection
    @cached_property
    def velo_to_image(self) -> FloatArray:
        """The 3x4 matrix P_rect @ R_rect(4x4) @ Tr_velo_to_cam."""
        rect = np.eye(4)
        rect[:3, :3] = self.rectification
        return self.projection @ rect @ self.velo_to_cam

    def project(self, points: NDArray[np.floating]) -> tuple[FloatArray, FloatArray]:
        """Nx3 lidar points to (Nx2 pixel coordinates u, v; N depths). Points with depth <= 0 get NaN pixels."""
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"points must be an Nx3 array, got shape {points.shape}")
        matrix = self.velo_to_image
        xyz = points[:, :3].astype(np.float64, copy=False)
        image = xyz @ matrix[:, :3].T + matrix[:, 3]
        depth = image[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = image[:, :2] / depth[:, None]
        uv[~(depth > 0)] = np.nan
        return uv, depth

    def pixel_indices(
        self, points: NDArray[np.floating], image_size: tuple[int, int] | None = None, min_depth: float = 1e-3
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.bool_]]:
        """Rows, columns and depths of the pixels the points fall on, and which points do land in the image.

        `image_size` (width, height) defaults to the calibrated size; a different size rescales the
        projection (see `scaled`). Points with depth <= min_depth or outside the image are invalid;
        their rows/cols are 0. Computed in float32, pixel coordinates only for points in front.
        """
        calib = self if image_size is None or image_size == self.image_size else self.scaled(*image_size)
        if calib.image_size is None:
            raise CalibrationError("image size unknown: pass image_size=(width, height)")
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"points must be an Nx3 array, got shape {points.shape}")
        width, height = calib.image_size
        matrix = calib.velo_to_image.astype(np.float32)
        xyz = points[:, :3].astype(np.float32, copy=False)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # NaN/inf points fail the tests below
            depth = xyz @ matrix[2, :3] + matrix[2, 3]
            front = np.flatnonzero(depth > min_depth)
            image = xyz[front] @ matrix[:2, :3].T + matrix[:2, 3]
            cols_f = np.floor(image[:, 0] / depth[front] + 0.5)
            rows_f = np.floor(image[:, 1] / depth[front] + 0.5)
        inside = (cols_f >= 0) & (cols_f < width) & (rows_f >= 0) & (rows_f < height)
        chosen = front[inside]
        count = len(points)
        rows, cols, valid = np.zeros(count, np.int64), np.zeros(count, np.int64), np.zeros(count, bool)
        rows[chosen], cols[chosen], valid[chosen] = rows_f[inside], cols_f[inside], True
        return rows, cols, depth, valid

    def scaled(self, width: int, height: int) -> Calibration:
        """The calibration of the same camera with its image resized to width x height.

        Keeps pixel centres aligned: u' = (u + 0.5) * sx - 0.5, so borders map to borders.
        """
        if self.image_size is None:
            raise CalibrationError("cannot rescale a calibration whose image size is unknown")
        sx, sy = width / self.image_size[0], height / self.image_size[1]
        scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return Calibration(scale @ self.projection, self.rectification, self.velo_to_cam, (width, height))

    def camera_rays(self) -> tuple[FloatArray, FloatArray]:
        """Camera centre (3,) and per-pixel ray directions (H, W, 3), both in the lidar frame.

        The point `centre + s * directions[row, col]` projects onto pixel (row, col) at depth s.
        """
        if self.image_size is None:
            raise CalibrationError("camera rays need the image size")
        width, height = self.image_size
        inverse = np.linalg.inv(self.velo_to_image[:, :3])
        cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1)
        return self.camera_center, pixels @ inverse.T

    @property
    def camera_center(self) -> FloatArray:
        """The camera's optical centre in the lidar frame."""
        return -np.linalg.inv(self.velo_to_image[:, :3]) @ self.velo_to_image[:, 3]


def format_matrix_line(key: str, values: FloatArray) -> str:
    """A KITTI calib line, `key: v v v` with values in KITTI's %e style."""
    return f"{key}: " + " ".join(f"{v:.6e}" for v in np.asarray(values, dtype=np.float64).ravel())
