"""Readers for KITTI raw drives: Velodyne sweeps, point labels, timestamps and the drive layout."""

from __future__ import annotations

import calendar
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


def parse_timestamp(text: str) -> int:
    """'2011-09-26 13:02:25.594360375' to integer nanoseconds since the Unix epoch (UTC)."""
    try:
        date, clock = text.strip().split(" ")
        year, month, day = (int(v) for v in date.split("-"))
        hms, _, fraction = clock.partition(".")
        hour, minute, second = (int(v) for v in hms.split(":"))
    except ValueError:
        raise SemsegError(f"'{text.strip()}' is not a KITTI timestamp like '2011-09-26 13:02:25.594360375'") from None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def read_timestamps(path: str | Path) -> NDArray[np.int64]:
    """All timestamps of a KITTI timestamps.txt (blank lines skipped) as int64 nanoseconds."""
    path = Path(path)
    if not path.is_file():
        raise SemsegError(f"{path}: timestamps file not found")
    return np.array([parse_timestamp(line) for line in path.read_text().splitlines() if line.strip()], dtype=np.int64)


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

    def image_path(self, frame: str) -> Path:
        return self.image_dir / "data" / f"{frame}.png"

    def velodyne_path(self, frame: str) -> Path:
        return self.velodyne_dir / "data" / f"{frame}.bin"
