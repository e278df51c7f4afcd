"""A short `semseg demo`: synthetic drive -> bag -> player + both nodes over real rclpy -> scores and report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosutil import isolate_ros_domain

from semseg_ros.data.images import read_label_png
from semseg_ros.fusion.bev import LEGEND_WIDTH
from semseg_ros.labels import get_label_set
from semseg_ros.node_params import SYNTHETIC_MODEL
from semseg_ros.pictures import CAPTION_HEIGHT

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / SYNTHETIC_MODEL


@pytest.mark.slow
def test_short_demo_scores_the_shipped_model(tmp_path: Path) -> None:
    isolate_ros_domain()
    from semseg_ros.demo import run_demo

    table = run_demo(tmp_path, frames=4, seed=3, model=str(SHIPPED), rate=0.2)
    report = tmp_path / "report"
    for name in ("report.md", "report.json", "overlay.png", "bev.png", "demo.mp4"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    scores = json.loads((report / "report.json").read_text())["scores"]
    assert scores["frames_scored"] == 4  # the player waits for each mask: every frame is scored, whatever the load
    assert scores["pixel_mIoU"] >= 0.35 and scores["pixel_accuracy"] >= 0.8
    assert scores["point_label_accuracy"] >= 0.75 and scores["points_labelled"] > 10_000
    assert scores["cluster_recall"] >= 0.3
    assert "pixel mIoU" in table
    # The report: one source for its figures, pixel counts per class, pictures that name their frame.
    data = json.loads((report / "report.json").read_text())
    run, scores = data["run"], data["scores"]
    # report.md's table is the console's, and its figures are report.json's.
    assert f"```\n{table}\n```" in (report / "report.md").read_text()
    assert run["camera_frames"]["processed"] == 4 and run["clouds_fused"] >= 3
    # Clouds dropped for want of a mask within slop are counted and said (a tight slop fused 1 of 4, silently).
    assert ("dropped: no mask within slop" in table) == (run["clouds_without_mask"] > 0)
    from semseg_ros.demo import _summary_table

    data["run"] |= {"clouds_without_mask": 2, "slop_s": 0.0001}
    assert f"{run['clouds_fused']} (2 dropped: no mask within slop 0.0001 s)" in _summary_table(data)
    assert f"{run['frames_per_second_played']:.2f} over {run['pipeline_wall_s']:.1f} s, playback paced at --rate" in table
    assert f"about {1000 / run['latency_ms']['segmentation']['total']['p50_ms']:.1f} FPS if frames came faster" in table
    assert run["latency_ms"]["segmentation"]["total"]["samples"] == 4
    assert (
        f"{run['latency_ms']['segmentation']['total']['p50_ms']:.1f} / {run['latency_ms']['segmentation']['total']['p95_ms']:.1f}" in table
    )
    assert run["demo_wall_s"] > run["pipeline_wall_s"] > 0
    assert table.splitlines()[-1].endswith(f"  {run['demo_wall_s']:.0f} s")  # one wall-time measurement
    # Per-class GT pixel counts, counted again from the drive's semantic PNGs.
    label_set = get_label_set("cityscapes19")
    drive = next((tmp_path / "data").rglob("*_sync"))
    counts = np.zeros(256, np.int64)
    for png in sorted((drive / "image_02" / "semantic").glob("*.png")):
        counts += np.bincount(label_set.map_cityscapes_ids(read_label_png(png)).ravel(), minlength=256)
    assert scores["class_gt_pixels"] == {c: int(counts[i]) for i, c in enumerate(label_set.classes)}
    markdown = (report / "report.md").read_text()
    car = label_set.classes.index("car")
    assert f"| car | {scores['class_iou']['car']:.3f} | {counts[car]:,} | {scores['class_predicted_pixels']['car']:,} |" in markdown
    # Both pictures say which frame they show: the middle one of four.
    assert data["pictures"]["overlay.png"].startswith("overlay: frame 3 of 4, image_02/data/0000000002.png, stamp 20")
    assert data["pictures"]["bev.png"].startswith("labelled cloud: frame 3 of 4, velodyne_points/data/0000000002.bin, stamp 20")
    image = cv2.imread(str(drive / "image_02" / "data" / "0000000002.png"))
    overlay = cv2.imread(str(report / "overlay.png"))
    legend = overlay[CAPTION_HEIGHT + image.shape[0] :]  # under the image: the classes of that frame's mask
    assert overlay.shape[1:] == image.shape[1:] and legend.shape[0] >= 20
    car_colour = tuple(int(v) for v in label_set.colors[car][::-1])  # BGR as OpenCV reads it
    assert (legend == car_colour).all(axis=2).sum() >= 16 * 12
    assert cv2.imread(str(report / "bev.png")).shape == (CAPTION_HEIGHT + 800, 600 + LEGEND_WIDTH, 3)


def test_shipped_model_is_small_and_self_describing() -> None:
    from semseg_ros.models.checkpoint import load_checkpoint

    assert SHIPPED.stat().st_size <= 15 * 2**20
    data = load_checkpoint(SHIPPED)
    assert data["card"]["label_set"] == "cityscapes19" and "train_state" not in data


def test_sigterm_stops_the_demo_without_a_traceback(tmp_path: Path) -> None:
    """rclpy shuts its context down on SIGTERM; the demo's waits then raised RCLError tracebacks (a review)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, **isolate_ros_domain()}
    demo = subprocess.Popen(
        [sys.executable, "-m", "semseg_ros", "demo", "--frames", "4", "--out", str(tmp_path / "out")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert demo.stderr is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "fusion_node]: ready" not in seen and time.monotonic() < deadline and demo.poll() is None:
        seen += demo.stderr.readline()
    time.sleep(1.0)  # inside the pipeline's waits
    demo.send_signal(signal.SIGTERM)
    rest = demo.communicate(timeout=60)[1]
    assert "Traceback" not in seen + rest, rest
    assert demo.returncode == 130 and rest.strip().splitlines()[-1] == "semseg demo: interrupted: stopped by Ctrl-C or SIGTERM"
