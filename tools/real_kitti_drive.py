"""Assemble a KITTI raw-drive folder from the real frames in test/data/kitti_real (for `semseg demo --drive`).

    .venv/bin/python tools/real_kitti_drive.py OUT      # writes OUT/2011_09_26/2011_09_26_drive_0000_sync

The images, Velodyne sweeps and the 2011_09_26 calibration are real KITTI data (see
test/data/kitti_real/SOURCES.md); the two object frames that carry that day's calibration become
frames 0 and 1. Their timestamps (0.1 s apart) are made up, and there is no OXTS: no public copy of
a whole raw drive was within reach.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

REAL = Path(__file__).resolve().parents[1] / "test" / "data" / "kitti_real"
FRAMES = ("000001", "000002")  # the object frames taken with the 2011_09_26 calibration


def assemble(out: Path) -> Path:
    """The drive folder under `out` (replaced if it exists)."""
    date = out / "2011_09_26"
    drive = date / "2011_09_26_drive_0000_sync"
    if drive.exists():
        shutil.rmtree(drive)
    date.mkdir(parents=True, exist_ok=True)
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt"):
        shutil.copy(REAL / "raw" / "2011_09_26" / name, date / name)
    stamps = [f"2011-09-26 13:02:25.{index:01d}00000000" for index in range(len(FRAMES))]
    for folder, source, suffix in (("image_02", "image_2", ".png"), ("velodyne_points", "velodyne", ".bin")):
        (drive / folder / "data").mkdir(parents=True)
        for index, frame in enumerate(FRAMES):
            shutil.copy(REAL / "object" / source / f"{frame}{suffix}", drive / folder / "data" / f"{index:010d}{suffix}")
        names = ("timestamps.txt", "timestamps_start.txt", "timestamps_end.txt") if folder == "velodyne_points" else ("timestamps.txt",)
        for name in names:
            (drive / folder / name).write_text("".join(f"{stamp}\n" for stamp in stamps))
    return drive


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write OUT/2011_09_26/2011_09_26_drive_0000_sync into")
    print(assemble(parser.parse_args().out))
