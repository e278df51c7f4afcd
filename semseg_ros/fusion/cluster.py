"""Clustering priors: Euclidean clusters of the labelled points of object classes, with boxes.

Per class, points (optionally voxel-downsampled) are linked when closer than the class radius
(k nearest neighbours from a KD-tree, then connected components); clusters with fewer than `min_points` points are
dropped. Each cluster gets a centroid, an axis-aligned box and a yaw-oriented box (PCA in x-y).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


@dataclass
class ClassRule:
    radius: float = 0.6  # link points closer than this (metres)
    min_points: int = 10


@dataclass
class Cluster:
    label: int
    indices: NDArray[np.int64]  # into the input cloud
    centroid: NDArray[np.float64]
    box_min: NDArray[np.float64]
    box_max: NDArray[np.float64]
    yaw: float  # orientation of the oriented box about z
    size: NDArray[np.float64]  # oriented box extents (length, width, height)
    center: NDArray[np.float64]  # oriented box centre


@dataclass
class ClusterSettings:
    rules: dict[int, ClassRule] = field(default_factory=dict)  # class id -> rule; classes not listed are not clustered
    voxel: float = 0.0  # voxel size for downsampling before linking (0 = off)


def euclidean_components(points: NDArray[np.floating], radius: float, neighbours: int = 10) -> NDArray[np.int64]:
    """Component id per point of the graph linking each point to its nearest neighbours within `radius`.

    Linking the k nearest neighbours (not every pair within the radius) keeps the graph small on
    dense scans; components only split where a gap wider than the radius, or than the k-th
    neighbour, separates points.
    """
    count = len(points)
    if count == 0:
        return np.zeros(0, np.int64)
    k = min(neighbours + 1, count)
    distances, indices = cKDTree(points).query(points, k=k, distance_upper_bound=radius)
    distances, indices = distances.reshape(count, k), indices.reshape(count, k)
    linked = np.isfinite(distances)
    rows = np.repeat(np.arange(count), k)[linked.ravel()]
    graph = coo_matrix((np.ones(len(rows), bool), (rows, indices[linked])), shape=(count, count))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _voxel_components(points: NDArray[np.floating], radius: float, voxel: float) -> NDArray[np.int64]:
    keys = np.floor(points / voxel).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return euclidean_components(points[first], radius)[inverse.ravel()]


def _boxes(xyz: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    xy = xyz[:, :2] - xyz[:, :2].mean(axis=0)
    sxx, syy, sxy = float(xy[:, 0] @ xy[:, 0]), float(xy[:, 1] @ xy[:, 1]), float(xy[:, 0] @ xy[:, 1])
    yaw = 0.5 * float(np.arctan2(2 * sxy, sxx - syy))  # principal axis of the x-y scatter
    c, s = np.cos(yaw), np.sin(yaw)
    local = xyz[:, :2] @ np.array([[c, -s], [s, c]])
    lo, hi = local.min(axis=0), local.max(axis=0)
    mid = (lo + hi) / 2
    center_xy = np.array([[c, -s], [s, c]]) @ mid
    z_lo, z_hi = xyz[:, 2].min(), xyz[:, 2].max()
    return yaw, np.array([hi[0] - lo[0], hi[1] - lo[1], z_hi - z_lo]), np.array([center_xy[0], center_xy[1], (z_lo + z_hi) / 2])


def cluster_points(
    points: NDArray[np.floating], labels: NDArray[np.integer], settings: ClusterSettings
) -> tuple[list[Cluster], NDArray[np.int32]]:
    """(clusters, cluster id per point with -1 for none)."""
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    ids = np.full(len(xyz), -1, np.int32)
    clusters: list[Cluster] = []
    for label, rule in sorted(settings.rules.items()):
        members = np.flatnonzero(labels == label)
        if len(members) < rule.min_points:
            continue
        subset = xyz[members]
        components = (
            _voxel_components(subset, rule.radius, settings.voxel) if settings.voxel > 0 else euclidean_components(subset, rule.radius)
        )
        counts = np.bincount(components)
        for component in np.flatnonzero(counts >= rule.min_points):
            indices = members[components == component]
            cloud = xyz[indices]
            yaw, size, center = _boxes(cloud)
            ids[indices] = len(clusters)
            clusters.append(Cluster(int(label), indices, cloud.mean(axis=0), cloud.min(axis=0), cloud.max(axis=0), yaw, size, center))
    return clusters, ids
