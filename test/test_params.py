"""The node parameter schema against config/kitti.yaml and against what the nodes declare."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from semseg_ros.errors import SemsegError
from semseg_ros.node_params import NODES, SEGMENTATION_PARAMS, check_params_file, validate_params_file

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_params_file_matches_the_schema() -> None:
    data = yaml.safe_load((ROOT / "config" / "kitti.yaml").read_text())
    assert validate_params_file(data) == []
    for node, params in NODES.items():
        assert set(data[node]["ros__parameters"]) == {p.name for p in params}, f"{node}: keep config/kitti.yaml complete"


def test_defaults_pass_their_own_checks() -> None:
    for params in NODES.values():
        for param in params:
            assert param.check(param.default) is None, param.name


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"segmentation_node": {"ros__parameters": {"overlay_alpha": 3.0}}}, "outside [0.0, 1.0]"),
        ({"segmentation_node": {"ros__parameters": {"backend": "cuda"}}}, "not one of auto"),
        ({"segmentation_node": {"ros__parameters": {"fp16": "yes"}}}, "expected bool"),
        ({"segmentation_node": {"parameters": {}}}, "exactly one key, ros__parameters"),
        ({"segmentaton_node": {"ros__parameters": {}}}, "no such node"),
    ],
)
def test_problems_are_named(section: dict, problem: str) -> None:
    with pytest.raises(SemsegError, match=problem.replace("[", r"\[")):
        check_params_file(section, "params.yaml")


def test_declared_parameters_equal_the_schema(ros: None, tiny_checkpoint: Path) -> None:
    from rclpy.parameter import Parameter

    from semseg_ros.ros.segmentation_node import SegmentationNode

    node = SegmentationNode(
        parameter_overrides=[
            Parameter("model", value=str(tiny_checkpoint)),
            Parameter("backend", value="torch"),
            Parameter("warmup_runs", value=0),
        ]
    )
    declared = {name for name in node._parameters if name not in ("use_sim_time", "start_type_description_service")}  # rclpy's own
    assert declared == {p.name for p in SEGMENTATION_PARAMS}
    node.destroy_node()
