"""Readers for KITTI raw drives: Velodyne sweeps, point labels, timestamps, OXTS and the drive layout."""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from semseg_ros.calibration import Calibration
from semseg_ros.errors import SemsegError


def read_velodyne(path: str | Path) -> NDArray[np.float32]:
    """A Velodyne .bin sweep as an (N, 4) float32 array: x, y, z, reflectance."""
    data = np.fromfile(path, dtype="<f4")
    if data.size % 4:
        raise SemsegError(f"{path}: {data.size * 4} bytes is not a whole number of 16-byte points; the file is truncated")
    return data.reshape(-1, 4)


def read_point_labels(path: str | Path) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
    """A SemanticKITTI-style .label file: (label ids, instance ids) per point."""
    raw = np.fromfile(path, dtype="<u4")
    return (raw & 0xFFFF).astype(np.uint16), (raw >> 16).astype(np.uint16)


KITTI_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?", re.ASCII)
LATEST_STAMP_YEAR = 2261  # int64 nanoseconds since 1970 reach into 2262


def parse_timestamp(text: str) -> int:
    """'2011-09-26 13:02:25.594360375' to integer nanoseconds since the Unix epoch (UTC).

    Refuses (SemsegError) anything but that form with ASCII digits, a date or time that does not
    exist (2011-02-30, 25:61:99), and instants before 1970 or past 2261 (a ROS stamp's range).
    """
    stripped = text.strip()
    match = KITTI_TIMESTAMP.fullmatch(stripped)
    if match is None:
        raise SemsegError(f"'{stripped[:40]}' is not a KITTI timestamp like '2011-09-26 13:02:25.594360375'")
    year, month, day, hour, minute, second = (int(v) for v in match.groups()[:6])
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise SemsegError(f"'{stripped}' is not a real date and time ({exc})") from None
    if not 1970 <= year <= LATEST_STAMP_YEAR:
        raise SemsegError(f"'{stripped}': years 1970-{LATEST_STAMP_YEAR} only (ROS stamps count nanoseconds from 1970 in an int64)")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1_000_000_000 + int((match.group(7) or "0").ljust(9, "0"))


MISSING_STAMP = -1  # read_timestamps' value for a blank line: a frame the logger lost


def read_timestamps(path: str | Path) -> NDArray[np.int64]:
    """A KITTI timestamps.txt as int64 nanoseconds since the Unix epoch, one entry per line.

    Entry i is frame i's stamp. KITTI leaves the line of a lost frame blank: its entry is
    MISSING_STAMP, so later frames keep their own stamps. Raises SemsegError for a missing file
    or a line that is not a KITTI timestamp.
    """
    path = Path(path)
    if not path.is_file():
        raise SemsegError(f"{path}: timestamps file not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines carry no frame
    stamps = []
    for number, line in enumerate(lines, 1):
        try:
            stamps.append(parse_timestamp(line) if line.strip() else MISSING_STAMP)
        except SemsegError as exc:
            raise SemsegError(f"{path}:{number}: {exc}") from None
    return np.array(stamps, dtype=np.int64)


OXTS_FIELDS = (
    "lat lon alt roll pitch yaw vn ve vf vl vu ax ay az af al au wx wy wz wf wl wu "
    "pos_accuracy vel_accuracy navstat numsats posmode velmode orimode"
).split()
EARTH_RADIUS = 6378137.0  # metres, as the KITTI devkit and pykitti use


def read_oxts(path: str | Path) -> dict[str, float]:
    """One oxts/data/*.txt record: the 30 OXTS values by name (KITTI devkit dataformat.txt).

    Units: lat, lon in degrees; alt in metres; roll, pitch, yaw in radians (yaw 0 = east,
    counter-clockwise); velocities m/s; accelerations m/s² (specific force, gravity included);
    angular rates rad/s. Raises SemsegError for a missing file, a wrong count or a non-number.
    """
    try:
        tokens = Path(path).read_text(encoding="utf-8", errors="replace").split()
    except OSError as exc:
        raise SemsegError(f"{path}: cannot read the OXTS record ({exc})") from None
    if len(tokens) != len(OXTS_FIELDS):
        raise SemsegError(f"{path}: {len(tokens)} values, an OXTS record has {len(OXTS_FIELDS)}")
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise SemsegError(f"{path}: an OXTS value is not a number") from None
    if not all(np.isfinite(values)):
        raise SemsegError(f"{path}: an OXTS value is not finite")
    record = dict(zip(OXTS_FIELDS, values, strict=True))
    if not (-90.0 < record["lat"] < 90.0 and -180.0 <= record["lon"] <= 180.0):
        raise SemsegError(f"{path}: latitude {record['lat']} / longitude {record['lon']} outside (-90, 90) / [-180, 180] degrees")
    return record


def oxts_rotation(roll: float, pitch: float, yaw: float) -> NDArray[np.float64]:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll): the IMU's orientation in the world (x east, y north, z up)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def mercator_position(lat: float, lon: float, alt: float, scale: float) -> NDArray[np.float64]:
    """Metres east, north and up of a GPS position in the KITTI devkit's Mercator projection (latToScale / latlonToMercator)."""
    x = scale * lon * np.pi * EARTH_RADIUS / 180.0
    y = scale * EARTH_RADIUS * np.log(np.tan((90.0 + lat) * np.pi / 360.0))
    return np.array([x, y, alt])


def oxts_pose(record: dict[str, float], first: dict[str, float]) -> NDArray[np.float64]:
    """4x4 pose T_w_imu of the IMU in a world frame at `first`'s position (x east, y north, z up).

    The KITTI devkit's convertOxtsToPose, as pykitti.utils.pose_from_oxts_packet ports it: Mercator
    scale cos(lat) from the first record, translation relative to the first record's position,
    rotation Rz(yaw) Ry(pitch) Rx(roll). The rotation stays absolute (east-north-up), as pykitti
    and kitti2bag keep it; the devkit would further express it relative to the first pose.
    """
    scale = np.cos(first["lat"] * np.pi / 180.0)
    origin = mercator_position(first["lat"], first["lon"], first["alt"], scale)
    pose = np.eye(4)
    pose[:3, :3] = oxts_rotation(record["roll"], record["pitch"], record["yaw"])
    pose[:3, 3] = mercator_position(record["lat"], record["lon"], record["alt"], scale) - origin
    return pose


@dataclass(frozen=True)
class KittiDrive:
    """A KITTI raw drive folder (<date>/<date>_drive_NNNN_sync) and its calibration one level up."""

    path: Path
    camera: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not (self.path / f"image_0{self.camera}").is_dir() and not (self.path / "velodyne_points").is_dir():
            raise SemsegError(
                f"{self.path}: not a KITTI raw drive (no image_0{self.camera}/ or velodyne_points/); pass a <date>_drive_NNNN_sync folder"
            )

    @property
    def image_dir(self) -> Path:
        return self.path / f"image_0{self.camera}"

    @property
    def velodyne_dir(self) -> Path:
        return self.path / "velodyne_points"

    @cached_property
    def calibration(self) -> Calibration:
        return Calibration.from_kitti_raw(self.path.parent, self.camera)

    def frames(self) -> list[str]:
        """Frame names ('0000000000', ...) that have a camera image."""
        return sorted(p.stem for p in (self.image_dir / "data").glob("*.png"))

    @property
    def oxts_dir(self) -> Path:
        return self.path / "oxts"

    def image_path(self, frame: str) -> Path:
        return self.image_dir / "data" / f"{frame}.png"

    def velodyne_path(self, frame: str) -> Path:
        return self.velodyne_dir / "data" / f"{frame}.bin"

    def oxts_path(self, frame: str) -> Path:
        return self.oxts_dir / "data" / f"{frame}.txt"
