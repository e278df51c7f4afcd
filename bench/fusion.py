"""Fusion speed on one core, side by side: labelling a ~120k-point sweep with a 1242x375 mask
(vectorised vs a per-point Python loop), occlusion handling, clustering, and the full fusion_node
callback path including PointCloud2 decode and encode.

    OMP_NUM_THREADS=1 .venv/bin/python bench/fusion.py [--runs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from semseg_ros.data.kitti_raw import KittiDrive, read_velodyne
from semseg_ros.fusion.cluster import ClassRule, ClusterSettings, cluster_points
from semseg_ros.fusion.label_points import FusionSettings, label_points
from semseg_ros.labels import get_label_set
from semseg_ros.synth import writers


def per_point_loop(points: np.ndarray, mask: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The straightforward version: one point at a time."""
    height, width = mask.shape
    labels = np.full(len(points), 255, np.uint8)
    for i, (x, y, z) in enumerate(points[:, :3]):
        u, v, w = matrix @ np.array([x, y, z, 1.0])
        if w > 0.5:
            col, row = int(np.floor(u / w + 0.5)), int(np.floor(v / w + 0.5))
            if 0 <= col < width and 0 <= row < height:
                labels[i] = mask[row, col]
    return labels


def timed(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    labels_set = get_label_set("cityscapes19")
    with tempfile.TemporaryDirectory() as tmp:
        drive = KittiDrive(writers.write_kitti_raw(Path(tmp), frames=1, seed=0, progress=False))
        frame = drive.frames()[0]
        points = read_velodyne(drive.velodyne_path(frame))
        mask = labels_set.map_cityscapes_ids(cv2.imread(str(drive.image_dir / "semantic" / f"{frame}.png"), cv2.IMREAD_UNCHANGED))
        calib = drive.calibration
    xyz = points[:, :3]
    print(f"{len(points):,} points, mask {mask.shape[1]}x{mask.shape[0]}, one thread")
    off, on = FusionSettings(occlusion=False), FusionSettings()
    plain = timed(lambda: label_points(xyz, mask, calib, off), args.runs)
    occluded = timed(lambda: label_points(xyz, mask, calib, on), args.runs)
    start = time.perf_counter()
    loop_labels = per_point_loop(points, mask, calib.velo_to_image)
    loop_ms = (time.perf_counter() - start) * 1e3
    assert (loop_labels == label_points(xyz, mask, calib, off).labels).all()
    classes = {labels_set.classes.index(n): ClassRule(0.6, 10) for n in ("car", "truck", "bus")}
    classes |= {labels_set.classes.index(n): ClassRule(0.4, 5) for n in ("person", "rider", "bicycle")}
    labelled = label_points(xyz, mask, calib, on).labels
    clustering = timed(lambda: cluster_points(xyz, labelled, ClusterSettings(classes)), args.runs)
    clusters, _ = cluster_points(xyz, labelled, ClusterSettings(classes))

    from sensor_msgs.msg import Image, PointCloud2, PointField

    from semseg_ros.ros.conversions import mask_from_image
    from semseg_ros.ros.pointcloud import labelled_cloud, read_points

    cloud = PointCloud2(height=1, width=len(points), point_step=16, row_step=16 * len(points), is_dense=True)
    cloud.fields = [PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(("x", "y", "z", "intensity"))]
    cloud.data = points.astype("<f4").tobytes()
    mask_msg = Image(height=mask.shape[0], width=mask.shape[1], encoding="mono8", step=mask.shape[1], data=mask.tobytes())
    palette = labels_set.palette()

    stages: dict[str, list[float]] = {"decode": [], "label + occlusion": [], "cluster": [], "encode": []}

    def callback() -> None:
        t0 = time.perf_counter()
        cloud_xyz, intensity, _ = read_points(cloud)
        t1 = time.perf_counter()
        labels = label_points(cloud_xyz, mask_from_image(mask_msg), calib, on)
        t2 = time.perf_counter()
        _, ids = cluster_points(cloud_xyz, labels.labels, ClusterSettings(classes))
        t3 = time.perf_counter()
        labelled_cloud(PointCloud2(), cloud.header, cloud_xyz, intensity, labels.labels, palette[labels.labels], ids)
        t4 = time.perf_counter()
        for times, (a, b) in zip(stages.values(), ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            times.append((b - a) * 1e3)

    full = timed(callback, args.runs)
    print(f"{'stage':<44}{'p50 ms':>9}{'p95 ms':>9}")
    print(f"{'label points, vectorised':<44}{plain[0]:9.2f}{plain[1]:9.2f}")
    print(f"{'label points, per-point Python loop':<44}{loop_ms:9.1f}{'':>9}   ({loop_ms / plain[0]:.0f}x slower)")
    print(f"{'label points + occlusion handling':<44}{occluded[0]:9.2f}{occluded[1]:9.2f}   (+{occluded[0] - plain[0]:.2f} ms)")
    print(f"{f'clustering ({len(clusters)} clusters)':<44}{clustering[0]:9.2f}{clustering[1]:9.2f}")
    print(f"{'node callback: decode, label, cluster, encode':<44}{full[0]:9.2f}{full[1]:9.2f}")
    for name, times in stages.items():
        print(f"{'  of which ' + name:<44}{np.percentile(times, 50):9.2f}{np.percentile(times, 95):9.2f}")


if __name__ == "__main__":
    main()
