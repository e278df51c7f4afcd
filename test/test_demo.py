"""A short `semseg demo`: synthetic drive -> bag -> player + both nodes over real rclpy -> scores and report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from rosutil import isolate_ros_domain

from semseg_ros.node_params import SYNTHETIC_MODEL

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
    assert "pixel mIoU" in table and cv2.imread(str(report / "bev.png")).shape == (800, 600, 3)


def test_shipped_model_is_small_and_self_describing() -> None:
    from semseg_ros.models.checkpoint import load_checkpoint

    assert SHIPPED.stat().st_size <= 15 * 2**20
    data = load_checkpoint(SHIPPED)
    assert data["card"]["label_set"] == "cityscapes19" and "train_state" not in data
