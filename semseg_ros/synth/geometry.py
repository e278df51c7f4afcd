"""Triangle-mesh primitives for the synthetic world (plain numpy, z up)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

_BOX_FACES = np.array(
    [
        [0, 2, 1], [0, 3, 2],  # bottom
        [4, 5, 6], [4, 6, 7],  # top
        [0, 1, 5], [0, 5, 4],  # front (y-)
        [2, 3, 7], [2, 7, 6],  # back (y+)
        [1, 2, 6], [1, 6, 5],  # right (x+)
        [3, 0, 4], [3, 4, 7],  # left (x-)
    ],
    dtype=np.int64,
)  # fmt: skip


class Mesh(NamedTuple):
    vertices: NDArray[np.float64]  # (V, 3)
    faces: NDArray[np.int64]  # (F, 3)


def box(size: tuple[float, float, float], center: tuple[float, float, float] = (0, 0, 0), yaw: float = 0.0) -> Mesh:
    """An axis-aligned box of `size` (dx, dy, dz), rotated by `yaw` about z and moved to `center`."""
    dx, dy, dz = (s / 2 for s in size)
    corners = np.array(
        [[-dx, -dy, -dz], [dx, -dy, -dz], [dx, dy, -dz], [-dx, dy, -dz],
         [-dx, -dy, dz], [dx, -dy, dz], [dx, dy, dz], [-dx, dy, dz]]
    )  # fmt: skip
    return Mesh(_place(corners, center, yaw), _BOX_FACES.copy())


def cylinder(radius: float, height: float, center: tuple[float, float, float], segments: int = 8) -> Mesh:
    """A vertical closed cylinder (a prism of `segments` sides) centred at `center`."""
    angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    bottom = np.column_stack([ring, np.full(segments, -height / 2)])
    top = np.column_stack([ring, np.full(segments, height / 2)])
    vertices = np.vstack([bottom, top, [[0, 0, -height / 2], [0, 0, height / 2]]])
    i = np.arange(segments)
    j = (i + 1) % segments
    sides = np.concatenate([np.stack([i, j, j + segments], 1), np.stack([i, j + segments, i + segments], 1)])
    caps = np.concatenate(
        [
            np.stack([np.full(segments, 2 * segments), j, i], 1),
            np.stack([np.full(segments, 2 * segments + 1), i + segments, j + segments], 1),
        ]
    )
    return Mesh(_place(vertices, center, 0.0), np.concatenate([sides, caps]))


def ellipsoid(radii: tuple[float, float, float], center: tuple[float, float, float], rings: int = 6, segments: int = 10) -> Mesh:
    """A UV-sphere scaled to `radii`."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    body = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    vertices = np.vstack([[[0, 0, 1]], body, [[0, 0, -1]]]) * np.asarray(radii)
    south = len(vertices) - 1
    faces = []
    k = np.arange(segments)
    kn = (k + 1) % segments
    faces.append(np.stack([np.zeros(segments, int), 1 + k, 1 + kn], 1))
    for r in range(rings - 2):
        a, b = 1 + r * segments, 1 + (r + 1) * segments
        faces.append(np.stack([a + k, b + k, b + kn], 1))
        faces.append(np.stack([a + k, b + kn, a + kn], 1))
    last = 1 + (rings - 2) * segments
    faces.append(np.stack([np.full(segments, south), last + kn, last + k], 1))
    return Mesh(_place(vertices, center, 0.0), np.concatenate(faces))


def quad(x0: float, x1: float, y0: float, y1: float, z: float) -> Mesh:
    """A horizontal rectangle at height z."""
    vertices = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=np.float64)
    return Mesh(vertices, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64))


def merge(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all of `meshes` (face indices shifted)."""
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.vertices for m in meshes]),
        np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
    )


def _place(vertices: NDArray[np.float64], center: tuple[float, float, float], yaw: float) -> NDArray[np.float64]:
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(vertices, dtype=np.float64) @ rotation.T + np.asarray(center, dtype=np.float64)
