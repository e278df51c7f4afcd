"""The calibration chain and the fusion on real KITTI sensor data (test/data/kitti_real, see SOURCES.md there)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from semseg_ros.calibration import Calibration
from semseg_ros.data.kitti_object import box_mask, class_for_type, read_kitti_labels, rect_to_velo, velo_to_rect
from semseg_ros.fusion.cluster import ClassRule, ClusterSettings, cluster_points
from semseg_ros.fusion.label_points import label_points
from semseg_ros.labels import get_label_set
from semseg_ros.node_params import REAL_MODEL

REAL = Path(__file__).parent / "data" / "kitti_real"
OBJECT = REAL / "object"
FRAMES = ("000000", "000001", "000002")
RAW_2011_09_26 = REAL / "raw" / "2011_09_26"
# The shipped CamVid model on these frames measured recall 0.343, precision 0.017 (bench/kitti_real.py;
# docs/benchmarks.md); the synthetic model gives 0.069 / 0.005. The floors catch a fall back towards that.
RECALL_FLOOR = 0.25
PRECISION_FLOOR = 0.01


def velodyne(frame: str) -> np.ndarray:
    return np.fromfile(OBJECT / "velodyne" / f"{frame}.bin", dtype="<f4").reshape(-1, 4)


def image_size(frame: str) -> tuple[int, int]:
    image = cv2.imread(str(OBJECT / "image_2" / f"{frame}.png"))
    return image.shape[1], image.shape[0]


def devkit_matrices(path: Path) -> dict[str, np.ndarray]:
    """The calib file as the KITTI devkit reads it (independent of semseg_ros.calibration)."""
    values = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        if rest.strip() and key != "calib_time":
            values[key.strip()] = np.array([float(v) for v in rest.split()])
    return values


def devkit_projection(points: np.ndarray, p2: np.ndarray, r0: np.ndarray, tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u, v and depth of P2 @ R0_rect(4x4) @ Tr_velo_to_cam(4x4) @ X, as the devkit's project_velo_to_image."""
    r = np.eye(4)
    r[:3, :3] = r0.reshape(3, 3)
    t = np.eye(4)
    t[:3, :] = tr.reshape(3, 4)
    homogeneous = np.c_[points[:, :3].astype(np.float64), np.ones(len(points))]
    image = (p2.reshape(3, 4) @ r @ t @ homogeneous.T).T
    return image[:, :2] / image[:, 2:], image[:, 2]


@pytest.mark.parametrize("frame", FRAMES)
def test_object_calibration_projects_as_the_devkit(frame: str) -> None:
    points = velodyne(frame)
    calib_file = OBJECT / "calib" / f"{frame}.txt"
    m = devkit_matrices(calib_file)
    expected, depth = devkit_projection(points, m["P2"], m["R0_rect"], m["Tr_velo_to_cam"])
    uv, our_depth = Calibration.from_kitti_object(calib_file, image_size=image_size(frame)).project(points)
    front = depth > 0
    assert front.sum() > 40_000
    assert np.abs(uv[front] - expected[front]).max() < 0.01
    assert np.isnan(uv[~front]).all()
    np.testing.assert_allclose(our_depth, depth, atol=1e-6)


@pytest.mark.parametrize("frame", ("000001", "000002"))
def test_raw_calibration_of_the_same_day_projects_as_the_devkit(frame: str) -> None:
    """Frames 000001-2 were taken on 2011_09_26: the raw-format calibration projects them identically."""
    points = velodyne(frame)
    cam, velo = devkit_matrices(RAW_2011_09_26 / "calib_cam_to_cam.txt"), devkit_matrices(RAW_2011_09_26 / "calib_velo_to_cam.txt")
    tr = np.c_[velo["R"].reshape(3, 3), velo["T"]]
    expected, depth = devkit_projection(points, cam["P_rect_02"], cam["R_rect_00"], tr)
    raw = Calibration.from_kitti_raw(RAW_2011_09_26)
    assert raw.image_size == image_size(frame) == (1242, 375)
    uv, _ = raw.project(points)
    front = depth > 0
    assert np.abs(uv[front] - expected[front]).max() < 0.01
    object_uv, _ = Calibration.from_kitti_object(OBJECT / "calib" / f"{frame}.txt", image_size=(1242, 375)).project(points)
    assert np.abs(object_uv[front] - uv[front]).max() < 0.01


def test_box_frames_round_trip() -> None:
    calibration = Calibration.from_kitti_object(OBJECT / "calib" / "000001.txt", image_size=(1242, 375))
    points = velodyne("000001")[:1000, :3].astype(np.float64)
    np.testing.assert_allclose(rect_to_velo(velo_to_rect(points, calibration), calibration), points, atol=1e-9)


@pytest.mark.parametrize("label_set_name", ["cityscapes19", "camvid"])
def test_mask_drawn_from_real_boxes_labels_the_points_inside_them(label_set_name: str) -> None:
    """With a perfect mask (the boxes' projected hulls) the in-box points get the box's class and cluster on it."""
    label_set = get_label_set(label_set_name)
    inside_total = right_total = checked = 0
    for frame in FRAMES:
        size = image_size(frame)
        calibration = Calibration.from_kitti_object(OBJECT / "calib" / f"{frame}.txt", image_size=size)
        boxes = [b for b in read_kitti_labels(OBJECT / "label_2" / f"{frame}.txt") if class_for_type(label_set, b.type) is not None]
        points = velodyne(frame)
        labelled = label_points(points, box_mask(boxes, calibration, label_set, size), calibration)
        rect = velo_to_rect(points, calibration)
        rules = {class_for_type(label_set, b.type): ClassRule(radius=0.5, min_points=5) for b in boxes}
        clusters, _ = cluster_points(points, labelled.labels, ClusterSettings({k: v for k, v in rules.items() if k is not None}))
        for box in boxes:
            class_id = class_for_type(label_set, box.type)
            inside = box.contains_rect(rect) & labelled.in_view
            right = int((labelled.labels[inside] == class_id).sum())
            inside_total, right_total = inside_total + int(inside.sum()), right_total + right
            assert right >= 0.9 * inside.sum(), f"{frame} {box.type}: {right} of {inside.sum()} in-box points got its class"
            if inside.sum() >= 30:
                checked += 1
                # within 1 m of the box, not of its centre: a 12 m truck seen from behind shows only its rear
                centres = np.array([points[c.indices, :3].mean(axis=0) for c in clusters if c.label == class_id]).reshape(-1, 3)
                assert box.contains_rect(velo_to_rect(centres, calibration), margin=1.0).any(), (
                    f"{frame} {box.type}: no cluster centre within 1 m"
                )
    assert inside_total > 400 and checked >= 3
    assert right_total >= 0.99 * inside_total, f"{right_total} of {inside_total} in-box points got their box's class"


def test_shipped_real_model_labels_the_points_of_real_objects(tmp_path: Path) -> None:
    """The real model plus fusion on real frames: recall and precision of object points (bench/kitti_real.py
    prints them per frame; docs/benchmarks.md records them). Floors sit below the measured figures, far
    below the goal (recall 0.8, precision 0.6): CamVid's 367 images do not carry over to KITTI yet."""
    from semseg_ros.eval.object_points import ObjectPointCounts, object_point_counts
    from semseg_ros.inference.segmenter import Segmenter

    model = Path(__file__).parents[1] / "models" / REAL_MODEL
    segmenter = Segmenter.from_path(model, backend="onnxruntime", input_size=(256, 832), cache_dir=tmp_path)
    label_set = get_label_set(segmenter.card.label_set)
    total = ObjectPointCounts()
    for frame in FRAMES:
        rgb = cv2.cvtColor(cv2.imread(str(OBJECT / "image_2" / f"{frame}.png")), cv2.COLOR_BGR2RGB)
        calibration = Calibration.from_kitti_object(OBJECT / "calib" / f"{frame}.txt", image_size=image_size(frame))
        points = velodyne(frame)
        labelled = label_points(points, segmenter.predict(rgb).labels, calibration)
        boxes = read_kitti_labels(OBJECT / "label_2" / f"{frame}.txt")
        total = total + object_point_counts(points, labelled.labels, labelled.in_view, boxes, calibration, label_set)
    assert total.in_boxes > 400
    assert total.recall >= RECALL_FLOOR, f"recall {total.recall:.3f}"
    assert total.precision >= PRECISION_FLOOR, f"precision {total.precision:.3f}"
