"""Write rendered worlds in the on-disk formats of the real datasets.

- KITTI raw drive (`write_kitti_raw`) with OXTS GPS/IMU records that follow the ego motion, and
  ground truth beside it: image_02/semantic (Cityscapes
  label ids), image_02/depth (KITTI depth format: uint16, metres * 256, 0 = none) and
  velodyne_points/labels (uint32, SemanticKITTI style: label id | instance id << 16).
- Cityscapes (`write_cityscapes`): leftImg8bit + gtFine, train/val split by sequence.
- KITTI road (`write_kitti_road`): data_road/training with um/umm/uu images, GT and calib.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from semseg_ros.calibration import RAW_CAM_TO_CAM, RAW_IMU_TO_VELO, RAW_VELO_TO_CAM, Calibration, format_matrix_line
from semseg_ros.labels import CITYSCAPES_ID, cityscapes_id_palette
from semseg_ros.synth.render import CameraFrame, LidarFrame, Renderer
from semseg_ros.synth.scene import RoadLayout, World, build_world

DATE = "2011_09_26"
KITTI_SIZE = (1242, 375)
FRAME_PERIOD = 0.1  # seconds, 10 Hz
_START = datetime(2011, 9, 26, 13, 2, 25)

# The real 2011_09_26 calibration (KITTI raw), for 1242x375 images.
_R_RECT_00 = [
    9.999239e-01,
    9.837760e-03,
    -7.445048e-03,
    -9.869795e-03,
    9.999421e-01,
    -4.278459e-03,
    7.402527e-03,
    4.351614e-03,
    9.999631e-01,
]
_P_RECT = {
    0: [7.215377e02, 0, 6.095593e02, 0, 0, 7.215377e02, 1.728540e02, 0, 0, 0, 1, 0],
    1: [7.215377e02, 0, 6.095593e02, -3.875744e02, 0, 7.215377e02, 1.728540e02, 0, 0, 0, 1, 0],
    2: [7.215377e02, 0, 6.095593e02, 4.485728e01, 0, 7.215377e02, 1.728540e02, 2.163791e-01, 0, 0, 1, 2.745884e-03],
    3: [7.215377e02, 0, 6.095593e02, -3.395242e02, 0, 7.215377e02, 1.728540e02, 2.199936e00, 0, 0, 1, 2.729905e-03],
}
_VELO_TO_CAM_R = [
    7.533745e-03,
    -9.999714e-01,
    -6.166020e-04,
    1.480249e-02,
    7.280733e-04,
    -9.998902e-01,
    9.998621e-01,
    7.523790e-03,
    1.480755e-02,
]
_VELO_TO_CAM_T = [-4.069766e-03, -7.631618e-02, -2.717806e-01]
_IMU_TO_VELO_R = [
    9.999976e-01,
    7.553071e-04,
    -2.035826e-03,
    -7.854027e-04,
    9.998898e-01,
    -1.482298e-02,
    2.024406e-03,
    1.482454e-02,
    9.998881e-01,
]
_IMU_TO_VELO_T = [-8.086759e-01, 3.195559e-01, -7.997231e-01]


def projection_for_size(camera: int, width: int, height: int) -> NDArray[np.float64]:
    """P_rect of `camera` for an image of width x height: square pixels, same optical centre.

    The real 1242x375 matrix is returned unchanged; other sizes scale the focal length with the
    width and move the principal point with each side (pixel centres kept aligned).
    """
    p = np.array(_P_RECT[camera], dtype=np.float64).reshape(3, 4)
    if (width, height) == KITTI_SIZE:
        return p
    k = p[:, :3]
    offset = np.linalg.solve(k, p[:, 3])
    sx, sy = width / KITTI_SIZE[0], height / KITTI_SIZE[1]
    k_new = np.array([[k[0, 0] * sx, 0, (k[0, 2] + 0.5) * sx - 0.5], [0, k[1, 1] * sx, (k[1, 2] + 0.5) * sy - 0.5], [0, 0, 1]])
    return np.column_stack([k_new, k_new @ offset])


def _velo_to_cam() -> NDArray[np.float64]:
    transform = np.eye(4)
    transform[:3, :3] = np.reshape(_VELO_TO_CAM_R, (3, 3))
    transform[:3, 3] = _VELO_TO_CAM_T
    return transform


def reference_calibration(width: int = KITTI_SIZE[0], height: int = KITTI_SIZE[1], camera: int = 2) -> Calibration:
    """The calibration written by the synthetic world (the real 2011_09_26 one at 1242x375)."""
    return Calibration(projection_for_size(camera, width, height), np.reshape(_R_RECT_00, (3, 3)), _velo_to_cam(), (width, height))


def write_raw_calibration(date_dir: Path, width: int, height: int) -> None:
    """calib_cam_to_cam.txt, calib_velo_to_cam.txt and calib_imu_to_velo.txt as KITTI raw has them."""
    cam = ["calib_time: 09-Jan-2012 13:57:47"]
    for camera in range(4):
        cam.append(format_matrix_line(f"S_rect_0{camera}", np.array([width, height], float)))
        if camera == 0:
            cam.append(format_matrix_line("R_rect_00", np.array(_R_RECT_00)))
        cam.append(format_matrix_line(f"P_rect_0{camera}", projection_for_size(camera, width, height)))
    velo = [
        "calib_time: 15-Mar-2012 11:37:16",
        format_matrix_line("R", np.array(_VELO_TO_CAM_R)),
        format_matrix_line("T", np.array(_VELO_TO_CAM_T)),
        "delta_f: 0.000000e+00 0.000000e+00",
        "delta_c: 0.000000e+00 0.000000e+00",
    ]
    imu = [
        "calib_time: 25-May-2012 16:47:16",
        format_matrix_line("R", np.array(_IMU_TO_VELO_R)),
        format_matrix_line("T", np.array(_IMU_TO_VELO_T)),
    ]
    for name, lines in ((RAW_CAM_TO_CAM, cam), (RAW_VELO_TO_CAM, velo), (RAW_IMU_TO_VELO, imu)):
        (date_dir / name).write_text("\n".join(lines) + "\n")


def object_calibration_text(width: int, height: int) -> str:
    """A KITTI object/road calib file (P0-P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo)."""
    lines = [format_matrix_line(f"P{c}", projection_for_size(c, width, height)) for c in range(4)]
    lines.append(format_matrix_line("R0_rect", np.array(_R_RECT_00)))
    lines.append(format_matrix_line("Tr_velo_to_cam", _velo_to_cam()[:3]))
    imu = np.column_stack([np.reshape(_IMU_TO_VELO_R, (3, 3)), _IMU_TO_VELO_T])
    lines.append(format_matrix_line("Tr_imu_to_velo", imu))
    return "\n".join(lines) + "\n"


# Where the synthetic drives take place: the first OXTS fix of KITTI 2011_09_26 (Karlsruhe).
OXTS_ORIGIN = (49.015003823272, 8.4342971002335, 116.43032836914)  # lat, lon (deg), alt (m)


def imu_to_velo() -> NDArray[np.float64]:
    """The 4x4 of calib_imu_to_velo.txt: X_velo = T @ X_imu (so also the IMU's pose in the lidar frame)."""
    transform = np.eye(4)
    transform[:3, :3] = np.reshape(_IMU_TO_VELO_R, (3, 3))
    transform[:3, 3] = _IMU_TO_VELO_T
    return transform


def oxts_record(velo_pose: NDArray[np.float64], velocity: NDArray[np.float64], origin_pose: NDArray[np.float64]) -> str:
    """An oxts/data/*.txt line for a lidar pose in the synthetic world (x east, y north, z up, metres).

    The IMU pose is velo_pose @ imu_to_velo(); latitude and longitude invert the KITTI devkit's Mercator
    projection (scale cos(lat) of OXTS_ORIGIN, where `origin_pose`'s IMU sits), so that oxts_pose() of the
    records gives back the IMU poses relative to the first. `velocity` is the world velocity (m/s);
    accelerations are the specific force of a level, unaccelerated vehicle (gravity only).
    """
    from scipy.spatial.transform import Rotation

    from semseg_ros.data.kitti_raw import EARTH_RADIUS, mercator_position

    imu, first = velo_pose @ imu_to_velo(), origin_pose @ imu_to_velo()
    lat0, lon0, alt0 = OXTS_ORIGIN
    scale = np.cos(np.radians(lat0))
    east, north, _ = mercator_position(lat0, lon0, alt0, scale) + imu[:3, 3] - first[:3, 3]
    lon = east * 180.0 / (scale * np.pi * EARTH_RADIUS)
    lat = np.degrees(2.0 * np.arctan(np.exp(north / (scale * EARTH_RADIUS)))) - 90.0
    alt = alt0 + imu[2, 3] - first[2, 3]
    yaw, pitch, roll = Rotation.from_matrix(imu[:3, :3]).as_euler("ZYX")
    body = imu[:3, :3].T
    forward = body @ velocity
    force = body @ np.array([0.0, 0.0, 9.81])
    values = [lat, lon, alt, roll, pitch, yaw, velocity[1], velocity[0], *forward, *force, *force, 0, 0, 0, 0, 0, 0, 0.05, 0.02]
    return " ".join(f"{v:.14g}" for v in values) + " 4 10 4 4 4\n"


def kitti_timestamp(seconds: float) -> str:
    """KITTI's timestamp text ('2011-09-26 13:02:25.594360375') for `seconds` after the drive start."""
    nanoseconds = round(seconds * 1e9)
    moment = _START + timedelta(seconds=nanoseconds // 1_000_000_000)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{nanoseconds % 1_000_000_000:09d}"


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _layout_for(seed: int) -> RoadLayout:
    rng = np.random.default_rng(seed)
    return RoadLayout(lanes_per_direction=int(rng.integers(1, 3)), markings=bool(rng.random() < 0.85), parking=bool(rng.random() < 0.7))


def _frames(
    world: World, renderer: Renderer, times: list[float], seed: int, desc: str, progress: bool
) -> Iterator[tuple[int, CameraFrame, LidarFrame]]:
    for index, t in enumerate(tqdm(times, desc=desc, unit="frame", disable=None if progress else True, leave=False)):
        camera, lidar = renderer.render(world, t, np.random.default_rng([seed, index]))
        yield index, camera, lidar


def _write_png(path: Path, image: NDArray) -> None:
    if image.ndim == 3:
        image = image[..., ::-1]  # RGB -> BGR for OpenCV
    if not cv2.imwrite(str(path), np.ascontiguousarray(image)):
        raise OSError(f"could not write {path}")


def depth_png(depth: NDArray[np.float32]) -> NDArray[np.uint16]:
    """KITTI depth format: metres * 256 as uint16, 0 where there is no depth."""
    scaled = np.where(np.isfinite(depth), np.round(depth * 256.0), 0.0)
    return np.clip(scaled, 0, 65535).astype(np.uint16)


def write_kitti_raw(
    out: Path,
    frames: int,
    seed: int,
    drive: int = 1,
    width: int = 1242,
    height: int = 375,
    progress: bool = True,
    nthreads: int = 0,
    randomise_appearance: bool = False,
) -> Path:
    """Render a drive of `frames` frames into out/2011_09_26/2011_09_26_drive_NNNN_sync; returns the drive dir."""
    date_dir = Path(out) / DATE
    drive_dir = date_dir / f"{DATE}_drive_{drive:04d}_sync"
    image_dir, velo_dir = drive_dir / "image_02", drive_dir / "velodyne_points"
    oxts_dir = drive_dir / "oxts"
    folders = (image_dir / "data", image_dir / "semantic", image_dir / "depth", velo_dir / "data", velo_dir / "labels", oxts_dir / "data")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    write_raw_calibration(date_dir, width, height)

    world_seed = _seed(seed, drive)
    world = build_world(world_seed, frames * FRAME_PERIOD, _layout_for(world_seed))
    renderer = Renderer(reference_calibration(width, height), nthreads, randomise_appearance)
    times = [k * FRAME_PERIOD for k in range(frames)]
    jitter = np.random.default_rng(world_seed).uniform(0.0, 0.002, frames)
    camera_stamps, velo_stamps = [], []
    for k, camera, lidar in _frames(world, renderer, times, world_seed, "synth kitti", progress):
        name = f"{k:010d}"
        _write_png(image_dir / "data" / f"{name}.png", camera.rgb)
        _write_png(image_dir / "semantic" / f"{name}.png", camera.label)
        _write_png(image_dir / "depth" / f"{name}.png", depth_png(camera.depth))
        lidar.points.astype("<f4").tofile(velo_dir / "data" / f"{name}.bin")
        lidar.label.astype("<u4").tofile(velo_dir / "labels" / f"{name}.label")
        camera_stamps.append(times[k])
        velo_stamps.append(times[k] - jitter[k])
    for k, t in enumerate(times):  # the GPS/IMU, at the camera's stamps, consistent with the ego motion
        pose, start = np.eye(4), np.eye(4)
        pose[:3, 3], start[:3, 3] = world.ego_position(t), world.ego_position(0.0)
        (oxts_dir / "data" / f"{k:010d}.txt").write_text(oxts_record(pose, np.array([world.ego_speed, 0.0, 0.0]), start))
    (oxts_dir / "timestamps.txt").write_text("".join(kitti_timestamp(t) + "\n" for t in camera_stamps))
    (image_dir / "timestamps.txt").write_text("".join(kitti_timestamp(t) + "\n" for t in camera_stamps))
    for suffix, shift in (("", 0.0), ("_start", -FRAME_PERIOD / 2), ("_end", FRAME_PERIOD / 2)):
        (velo_dir / f"timestamps{suffix}.txt").write_text("".join(kitti_timestamp(t + shift) + "\n" for t in velo_stamps))
    return drive_dir


def write_cityscapes(
    out: Path,
    frames: int,
    seed: int,
    sequences: int = 3,
    val_sequences: int = 1,
    width: int = 2048,
    height: int = 1024,
    progress: bool = True,
    nthreads: int = 0,
    randomise_appearance: bool = False,
) -> Path:
    """`frames` images per sequence in the Cityscapes layout; the last `val_sequences` sequences form val."""
    if not 0 < val_sequences < sequences:
        raise ValueError("need 0 < val_sequences < sequences so that train and val are both non-empty")
    root = Path(out)
    palette = cityscapes_id_palette()
    renderer = Renderer(reference_calibration(width, height), nthreads, randomise_appearance)
    stride = 8 * FRAME_PERIOD  # 8 m between images: distinct views, like Cityscapes' sparse frames
    for seq in range(sequences):
        split, city = ("val", "synthville") if seq >= sequences - val_sequences else ("train", "synthtown")
        image_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        world_seed = _seed(seed, seq, 1)
        world = build_world(world_seed, frames * stride, _layout_for(world_seed))
        times = [k * stride for k in range(frames)]
        for k, camera, _ in _frames(world, renderer, times, world_seed, f"synth cityscapes {split} {seq}", progress):
            stem = f"{city}_{seq:06d}_{k * 8:06d}"
            _write_png(image_dir / f"{stem}_leftImg8bit.png", camera.rgb)
            _write_png(gt_dir / f"{stem}_gtFine_labelIds.png", camera.label)
            _write_png(gt_dir / f"{stem}_gtFine_color.png", palette[camera.label])
            things = camera.instance > 0
            instance_ids = np.where(things, camera.label.astype(np.uint16) * 1000 + camera.instance % 1000, camera.label)
            _write_png(gt_dir / f"{stem}_gtFine_instanceIds.png", instance_ids.astype(np.uint16))
    return root


KITTI_ROAD_CATEGORIES = {
    "um": RoadLayout(lanes_per_direction=1, markings=True, parking=True),
    "umm": RoadLayout(lanes_per_direction=2, markings=True, parking=False),
    "uu": RoadLayout(lanes_per_direction=1, markings=False, parking=False),
}
ROAD_BGR, NOT_ROAD_BGR = (255, 0, 255), (0, 0, 255)


def write_kitti_road(
    out: Path,
    frames: int,
    seed: int,
    width: int = 1242,
    height: int = 375,
    progress: bool = True,
    nthreads: int = 0,
    randomise_appearance: bool = False,
) -> Path:
    """`frames` images per category (um, umm, uu) in the data_road/training layout."""
    training = Path(out) / "data_road" / "training"
    for name in ("image_2", "gt_image_2", "calib"):
        (training / name).mkdir(parents=True, exist_ok=True)
    renderer = Renderer(reference_calibration(width, height), nthreads, randomise_appearance)
    calib_text = object_calibration_text(width, height)
    stride = 8 * FRAME_PERIOD
    road = CITYSCAPES_ID["road"]
    for index, (category, layout) in enumerate(KITTI_ROAD_CATEGORIES.items()):
        world_seed = _seed(seed, index, 2)
        world = build_world(world_seed, frames * stride, layout)
        times = [k * stride for k in range(frames)]
        for k, camera, _ in _frames(world, renderer, times, world_seed, f"synth kitti-road {category}", progress):
            _write_png(training / "image_2" / f"{category}_{k:06d}.png", camera.rgb)
            (training / "calib" / f"{category}_{k:06d}.txt").write_text(calib_text)
            is_road = camera.label == road
            cv2.imwrite(str(training / "gt_image_2" / f"{category}_road_{k:06d}.png"), _road_gt(is_road))
            if category == "um":
                lo, hi = layout.ego_lane
                with np.errstate(invalid="ignore"):
                    ego_lane = is_road & (camera.points[..., 1] >= lo) & (camera.points[..., 1] < hi)
                cv2.imwrite(str(training / "gt_image_2" / f"{category}_lane_{k:06d}.png"), _road_gt(ego_lane))
    return training.parent


def _road_gt(mask: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """KITTI road GT colours (BGR): road magenta, everything else red (valid)."""
    return np.where(mask[..., None], np.array(ROAD_BGR, np.uint8), np.array(NOT_ROAD_BGR, np.uint8))
