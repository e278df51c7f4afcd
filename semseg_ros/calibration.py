"""The KITTI calibration chain: lidar points to camera pixels and depth.

One `Calibration` serves every source (KITTI raw calib files, KITTI object/odometry
calib files, a CameraInfo P matrix plus a lidar-to-camera extrinsic). A lidar point X
(homogeneous) lands in the image at

    x = P_rect @ R_rect(4x4) @ Tr_velo_to_cam(4x4) @ X,   u = x0 / x2,  v = x1 / x2,

valid only where the depth x2 is positive. Pixel centres sit at integer coordinates:
the pixel (row, col) covers u in [col - 0.5, col + 0.5) and v in [row - 0.5, row + 0.5).

A raw (unrectified) camera image is described, as ROS image_geometry does, by K and the
distortion D of a CameraInfo: the point is moved into the camera frame, normalised
(x/z, y/z), distorted with OpenCV's model of that name (plumb_bob and rational_polynomial:
Brown-Conrady radial k1..k6 and tangential p1, p2; equidistant: the fisheye model of
cv2.fisheye) and mapped through K (see `distort`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from semseg_ros.errors import CalibrationError

FloatArray = NDArray[np.float64]

RAW_CAM_TO_CAM = "calib_cam_to_cam.txt"
RAW_VELO_TO_CAM = "calib_velo_to_cam.txt"
RAW_IMU_TO_VELO = "calib_imu_to_velo.txt"
# ROS CameraInfo distortion models and how many coefficients each takes (shorter D is zero-padded).
# Most coefficients read per model: OpenCV (which image_geometry calls) reads D = k1 k2 p1 p2 k3 [k4 k5 k6]
# the same way whatever the ROS model name, so plumb_bob takes 8 too; its thin-prism and tilt terms
# (coefficients 9-14) are not implemented and refused.
DISTORTION_MODELS = {"plumb_bob": 8, "rational_polynomial": 8, "equidistant": 4}


def read_calib_file(path: str | Path) -> dict[str, list[str]]:
    """Read a KITTI calibration file into raw string tokens per key.

    Lines are `key: v1 v2 ...` (raw, object, odometry files) or `key v1 v2 ...` (KITTI tracking
    writes `R_rect`, `Tr_velo_cam` and `Tr_imu_velo` without a colon). Blank lines are skipped.
    Raises CalibrationError when the file is missing or not UTF-8 text.
    """
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
        key = key.strip()
        if not sep or not key or len(key.split()) > 1:  # no colon in the key: `key v1 v2 ...`
            tokens = line.split()
            if not tokens:
                continue
            key, value = tokens[0], " ".join(tokens[1:])
        entries[key] = value.split()
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


class CameraInfoLike(Protocol):
    """The sensor_msgs/CameraInfo fields `Calibration.from_camera_info` reads (no ROS import needed)."""

    width: int
    height: int
    distortion_model: str
    d: Sequence[float]
    k: Sequence[float]
    p: Sequence[float]


def distort(normalised: FloatArray, coefficients: FloatArray, model: str, max_radius: float = np.inf) -> FloatArray:
    """Nx2 normalised camera coordinates (x/z, y/z) to distorted normalised coordinates; NaN beyond `max_radius`.

    plumb_bob / rational_polynomial (OpenCV's camera model, D = k1 k2 p1 p2 k3 [k4 k5 k6]):
        radial = (1 + k1 r² + k2 r⁴ + k3 r⁶) / (1 + k4 r² + k5 r⁴ + k6 r⁶)
        x' = x radial + 2 p1 x y + p2 (r² + 2x²),  y' = y radial + p1 (r² + 2y²) + 2 p2 x y
    equidistant (OpenCV fisheye, D = k1 k2 k3 k4): θ = atan r, θd = θ (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸),
        (x', y') = (θd / r) (x, y).
    Pixels follow as K @ (x', y', 1), as cv2.projectPoints / cv2.fisheye.projectPoints compute them.
    """
    x, y = normalised[:, 0], normalised[:, 1]
    r2 = x * x + y * y
    if model == "equidistant":
        k1, k2, k3, k4 = coefficients[:4]
        r = np.sqrt(r2)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(r > 1e-12, theta_d / r, 1.0)
        out = normalised * factor[:, None]
    else:
        k1, k2, p1, p2, k3, k4, k5, k6 = np.pad(coefficients, (0, 8 - len(coefficients)))[:8]
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        out = np.column_stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y])
    out[~(r2 <= max_radius * max_radius)] = np.nan
    return out


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
    image_size: (width, height) the projection was calibrated for; None when the source does not
        say (KITTI object/tracking/odometry files, a CameraInfo of size 0): `pixel_indices` then
        takes the image (mask) it is given as the calibrated one.
    distortion, distortion_model: for a raw (unrectified) image, D and its ROS model name (see
        DISTORTION_MODELS); `projection` is then [K | 0]. None: a rectified image, no distortion.
    """

    projection: FloatArray
    rectification: FloatArray
    velo_to_cam: FloatArray
    image_size: tuple[int, int] | None = None
    distortion: FloatArray | None = None
    distortion_model: str = ""

    def __post_init__(self) -> None:
        for name, shape in (("projection", (3, 4)), ("rectification", (3, 3)), ("velo_to_cam", (4, 4))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise CalibrationError(f"calibration {name} has shape {value.shape}, expected {shape}")
            if not np.all(np.isfinite(value)):
                raise CalibrationError(f"calibration {name} holds a non-finite value")
            object.__setattr__(self, name, value)
        why = _rotation_problem(self.rectification)
        if why:
            raise CalibrationError(f"calibration rectification {why}")
        why = rigid_problem(self.velo_to_cam.ravel())
        if why:
            raise CalibrationError(f"calibration velo_to_cam: {why}")
        if abs(np.linalg.det(self.velo_to_image[:, :3])) < 1e-12:
            raise CalibrationError("calibration projection is degenerate (its left 3x3 block is singular)")
        if self.image_size is not None:
            width, height = (int(v) for v in self.image_size)
            if width <= 0 or height <= 0:
                raise CalibrationError(f"calibration image size {self.image_size} must be positive")
            object.__setattr__(self, "image_size", (width, height))
        if self.distortion is not None:
            self._check_distortion()

    def _check_distortion(self) -> None:
        count = DISTORTION_MODELS.get(self.distortion_model)
        if count is None:
            raise CalibrationError(
                f"distortion model {self.distortion_model!r} is not supported (supported: {', '.join(DISTORTION_MODELS)})"
            )
        values = np.asarray(self.distortion, dtype=np.float64).ravel()
        if len(values) > count or not np.all(np.isfinite(values)):
            raise CalibrationError(
                f"{self.distortion_model} distortion takes at most {count} finite coefficients (OpenCV's thin-prism and tilt "
                f"terms are not supported), got {values.tolist()}"
            )
        if np.any(self.projection[:, 3] != 0) or np.any(self.projection[2, :3] != (0.0, 0.0, 1.0)):
            raise CalibrationError("a distorted (raw image) calibration needs projection [K | 0] with K's last row 0 0 1")
        object.__setattr__(self, "distortion", np.pad(values, (0, count - len(values))))

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

    @classmethod
    def from_camera_info(
        cls,
        info: CameraInfoLike,
        lidar_to_camera: FloatArray,
        mask_image: str = "rectified",
    ) -> Calibration:
        """From a sensor_msgs/CameraInfo (fields k, d, distortion_model, p, width, height) and a 4x4 extrinsic.

        Follows ROS image_geometry: masks of the rectified image (`mask_image` "rectified") are
        projected with P (D does not apply to a rectified image); masks of the raw image ("raw") with K
        and D. `lidar_to_camera` maps lidar points into the camera frame P (or K) projects from.
        Raises CalibrationError for an unknown `mask_image`, an unsupported distortion model with a
        non-zero D, or unusable matrices.
        """
        size = (int(info.width), int(info.height)) if info.width and info.height else None
        extrinsic = np.asarray(lidar_to_camera, float).reshape(4, 4)
        if mask_image == "rectified":
            return cls.from_projection(np.asarray(info.p, float).reshape(3, 4), extrinsic, size)
        if mask_image != "raw":
            raise CalibrationError(f"mask_image {mask_image!r}: expected rectified or raw")
        k = np.asarray(info.k, float).reshape(3, 3)
        projection = np.column_stack([k, np.zeros(3)])
        d = np.asarray(info.d, float).ravel()
        if info.distortion_model != "equidistant" and not np.any(d):  # a fisheye lens with D = 0 still is one
            return cls(projection, np.eye(3), extrinsic, size)
        return cls(projection, np.eye(3), extrinsic, size, d, str(info.distortion_model))

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
            if self.distortion is not None:
                k = self.projection[:, :3]
                normalised = (uv - k[:2, 2]) @ np.linalg.inv(k[:2, :2]).T
                uv = distort(normalised, self.distortion, self.distortion_model, self.max_undistorted_radius) @ k[:2, :2].T + k[:2, 2]
        uv[~(depth > 0)] = np.nan
        return uv, depth

    @cached_property
    def max_undistorted_radius(self) -> float:
        """Largest normalised radius r = |(x/z, y/z)| up to which the distortion is one-to-one (inf without D).

        Beyond it the polynomial folds back, and far-off points would land inside the image; `project`
        gives such points NaN pixels. Found by sampling the radial mapping (tangential terms left out).
        """
        if self.distortion is None:
            return float("inf")
        radius = np.linspace(0.0, 20.0, 20001)[1:]
        mapped = np.hypot(*distort(np.column_stack([radius, np.zeros_like(radius)]), self.distortion, self.distortion_model, np.inf).T)
        folds = np.flatnonzero(~(np.diff(mapped) > 0))
        return float(radius[folds[0]]) if len(folds) else float("inf")

    def pixel_indices(
        self, points: NDArray[np.floating], image_size: tuple[int, int] | None = None, min_depth: float = 1e-3
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.bool_]]:
        """Rows, columns and depths of the pixels the points fall on, and which points do land in the image.

        `image_size` (width, height) defaults to the calibrated size; a different size rescales the
        projection (see `scaled`). A calibration without a known size (KITTI object, tracking and
        odometry files carry none) is taken to be calibrated for `image_size`. Points with depth <=
        min_depth or outside the image are invalid; their rows/cols are 0. Computed in float32 (float64
        with distortion), pixel coordinates only for points in front.
        """
        if image_size is not None and self.image_size is None:
            calib = replace(self, image_size=image_size)
        else:
            calib = self if image_size is None or image_size == self.image_size else self.scaled(*image_size)
        if calib.image_size is None:
            raise CalibrationError("image size unknown: pass image_size=(width, height)")
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"points must be an Nx3 array, got shape {points.shape}")
        width, height = calib.image_size
        if calib.distortion is not None:
            return calib._distorted_pixel_indices(points, min_depth)
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

    def _distorted_pixel_indices(
        self, points: NDArray[np.floating], min_depth: float
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.bool_]]:
        assert self.image_size is not None
        width, height = self.image_size
        uv, depth = self.project(points)
        with np.errstate(invalid="ignore"):
            cols_f, rows_f = np.floor(uv[:, 0] + 0.5), np.floor(uv[:, 1] + 0.5)
            valid = (depth > min_depth) & (cols_f >= 0) & (cols_f < width) & (rows_f >= 0) & (rows_f < height)
        rows, cols = np.zeros(len(depth), np.int64), np.zeros(len(depth), np.int64)
        rows[valid], cols[valid] = rows_f[valid], cols_f[valid]
        return rows, cols, depth.astype(np.float32), valid

    def scaled(self, width: int, height: int) -> Calibration:
        """The calibration of the same camera with its image resized to width x height.

        Keeps pixel centres aligned: u' = (u + 0.5) * sx - 0.5, so borders map to borders.
        """
        if self.image_size is None:
            raise CalibrationError("cannot rescale a calibration whose image size is unknown")
        sx, sy = width / self.image_size[0], height / self.image_size[1]
        scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return replace(self, projection=scale @ self.projection, image_size=(width, height))

    def camera_rays(self) -> tuple[FloatArray, FloatArray]:
        """Camera centre (3,) and per-pixel ray directions (H, W, 3), both in the lidar frame.

        The point `centre + s * directions[row, col]` projects onto pixel (row, col) at depth s.
        """
        if self.image_size is None:
            raise CalibrationError("camera rays need the image size")
        if self.distortion is not None:
            raise CalibrationError("camera rays of a distorted (raw image) calibration are not supported")
        width, height = self.image_size
        inverse = np.linalg.inv(self.velo_to_image[:, :3])
        cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1)
        return self.camera_center, pixels @ inverse.T

    @property
    def camera_center(self) -> FloatArray:
        """The camera's optical centre in the lidar frame."""
        return -np.linalg.inv(self.velo_to_image[:, :3]) @ self.velo_to_image[:, 3]


def read_rigid_transform(path: str | Path) -> FloatArray:
    """The 4x4 transform of a KITTI raw `R:`/`T:` file (calib_velo_to_cam.txt, calib_imu_to_velo.txt).

    It maps points of the first-named sensor's frame into the second's (imu_to_velo: X_velo = T X_imu).
    Raises CalibrationError for a missing file or malformed entries.
    """
    path = Path(path)
    entries = read_calib_file(path)
    return _rigid(_matrix(entries, path, ("R",), (3, 3)), _matrix(entries, path, ("T",), (3, 1)))


def format_matrix_line(key: str, values: FloatArray) -> str:
    """A KITTI calib line, `key: v v v` with values in KITTI's %e style."""
    return f"{key}: " + " ".join(f"{v:.6e}" for v in np.asarray(values, dtype=np.float64).ravel())


def rigid_from_pose(translation: Sequence[float], quaternion: Sequence[float]) -> FloatArray:
    """The 4x4 transform of a pose: translation (x, y, z) in metres and rotation quaternion (x, y, z, w),
    as in a geometry_msgs/Transform (normalised first, as scipy's Rotation does). Raises CalibrationError
    for a zero or non-finite quaternion."""
    quat, shift = np.asarray(quaternion, float), np.asarray(translation, float)
    if not (np.all(np.isfinite(quat)) and np.all(np.isfinite(shift))):
        raise CalibrationError(f"pose translation {list(shift)} / quaternion {list(quat)} holds a non-finite value")
    scale = float(np.abs(quat).max()) if quat.size else 0.0
    try:  # scaled to a largest component of 1 first: (1e300, 1e300, 0, 0) overflowed scipy's norm into a zero matrix
        rotation = Rotation.from_quat(quat / scale if scale > 0 else quat).as_matrix()
    except ValueError as exc:
        raise CalibrationError(f"rotation quaternion {list(quaternion)}: {exc}") from None
    return _rigid(rotation, shift.reshape(3, 1))


def rigid_problem(values: Sequence[float] | FloatArray) -> str | None:
    """Why 16 row-major values are not a rigid 4x4 transform (rotation with det +1, last row 0 0 0 1), or None."""
    matrix = np.asarray(values, float)
    if matrix.size != 16 or not np.all(np.isfinite(matrix)):
        return "expected 16 finite values (a row-major 4x4 transform)"
    matrix = matrix.reshape(4, 4)
    why = _rotation_problem(matrix[:3, :3])
    if why:
        return f"its upper-left 3x3 block {why}"
    if np.abs(matrix[3] - [0, 0, 0, 1]).max() > 1e-9:
        return f"its last row is {matrix[3].tolist()}, must be 0 0 0 1"
    return None


def _rotation_problem(rotation: FloatArray) -> str | None:
    """Why a 3x3 matrix is not a rotation (orthonormal within 1e-2, determinant +1), or None."""
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > 1e-2:
        return f"is not a rotation (R Rᵀ deviates from I by {error:.3g})"
    if np.linalg.det(rotation) < 0:
        return "is a reflection (determinant -1), not a rotation"
    return None


CALIBRATION_SOURCES = ("kitti_raw", "kitti_object", "camera_info", "camera_info_tf")


@dataclass(frozen=True)
class CalibrationSource:
    """Where the lidar-camera calibration comes from (the fusion_node parameters of the same names).

    kitti_raw: calib_cam_to_cam.txt + calib_velo_to_cam.txt in `kitti_calib_dir`; kitti_object: the calib
    file `kitti_calib_file`; both for camera `camera_index` and rectified images only. camera_info: P (or K
    and D, `mask_image` raw) of a CameraInfo plus the row-major 4x4 `lidar_to_camera`; camera_info_tf: the
    same with the extrinsic of a tf2 lookup per cloud.
    """

    source: str
    kitti_calib_dir: str
    kitti_calib_file: str
    camera_index: int
    lidar_to_camera: Sequence[float]
    mask_image: str

    def __post_init__(self) -> None:
        if self.source not in CALIBRATION_SOURCES:
            raise CalibrationError(f"calibration_source {self.source!r}: expected one of {', '.join(CALIBRATION_SOURCES)}")
        if self.from_files and self.mask_image == "raw":
            raise CalibrationError(f"mask_image raw needs a camera_info calibration source: {self.source} describes rectified images only")
        if self.source == "kitti_raw" and not self.kitti_calib_dir:
            raise CalibrationError(
                "calibration_source kitti_raw (the default when no params file sets it) needs kitti_calib_dir (the KITTI date "
                "folder); or set calibration_source camera_info, as config/kitti.yaml does"
            )
        if self.source == "kitti_object" and not self.kitti_calib_file:
            raise CalibrationError("calibration_source kitti_object needs kitti_calib_file")

    @property
    def from_files(self) -> bool:
        """Known at start from KITTI files (no camera_info needed)."""
        return self.source.startswith("kitti")

    @property
    def extrinsic_from_tf(self) -> bool:
        """The lidar-to-camera transform comes per cloud from tf2 (`calibration(info, lidar_to_camera=...)`)."""
        return self.source == "camera_info_tf"

    def calibration(self, camera_info: CameraInfoLike | None = None, lidar_to_camera: FloatArray | None = None) -> Calibration | None:
        """The calibration this source gives with what is known so far, None while something is missing.

        File sources read their files (camera_info is not used); camera_info needs `camera_info`;
        camera_info_tf needs `camera_info` and the 4x4 `lidar_to_camera` looked up for the cloud.
        Raises CalibrationError for unreadable files or an unusable camera_info.
        """
        if self.source == "kitti_raw":
            return Calibration.from_kitti_raw(self.kitti_calib_dir, self.camera_index)
        if self.source == "kitti_object":
            return Calibration.from_kitti_object(self.kitti_calib_file, self.camera_index)
        extrinsic = lidar_to_camera if self.extrinsic_from_tf else np.asarray(self.lidar_to_camera, float)
        if camera_info is None or extrinsic is None:
            return None
        return Calibration.from_camera_info(camera_info, extrinsic, self.mask_image)
