"""Where installed package data lives: share/semseg_ros (colcon or pip) or the source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

from semseg_ros.errors import SemsegError

PACKAGE = "semseg_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dirs() -> list[Path]:
    """Candidate share folders: the ament index (colcon install), the venv prefix (pip), the checkout."""
    found = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            found.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, LookupError, OSError, ValueError):  # not installed by colcon, or no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    found.append(Path(sys.prefix) / "share" / PACKAGE)
    if (SOURCE_ROOT / "package.xml").is_file():
        found.append(SOURCE_ROOT)
    return [p for p in found if p.is_dir()]


def resolve_data_file(name: str | Path, folder: str) -> Path:
    """`name` as given if it exists, else <share>/<folder>/<name> in the first share folder that has it."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute():
        for share in share_dirs():
            candidate = share / folder / path
            if candidate.is_file():
                return candidate
    searched = ", ".join(str(s / folder) for s in share_dirs()) or "no share folder found"
    raise SemsegError(f"{name}: file not found (also looked in {searched})")
