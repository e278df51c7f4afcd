"""Bird's-eye-view pictures of labelled point clouds."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def render_bev(
    points: NDArray[np.floating],
    colors: NDArray[np.uint8],
    x_range: tuple[float, float] = (-20.0, 60.0),
    y_range: tuple[float, float] = (-30.0, 30.0),
    metres_per_pixel: float = 0.1,
    background: tuple[int, int, int] = (24, 24, 24),
) -> NDArray[np.uint8]:
    """An RGB top view of the cloud: forward (+x) is up, left (+y) is left; higher points drawn on top."""
    height = round((x_range[1] - x_range[0]) / metres_per_pixel)
    width = round((y_range[1] - y_range[0]) / metres_per_pixel)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = background
    xyz = np.asarray(points)[:, :3]
    rows = np.floor((x_range[1] - xyz[:, 0]) / metres_per_pixel).astype(np.int64)
    cols = np.floor((y_range[1] - xyz[:, 1]) / metres_per_pixel).astype(np.int64)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width) & np.isfinite(xyz).all(axis=1)
    order = np.argsort(xyz[inside, 2], kind="stable")
    image[rows[inside][order], cols[inside][order]] = np.asarray(colors)[inside][order]
    return image
