"""The node parameter schema against config/kitti.yaml and against what the nodes declare."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("cluster_rules", '{"car": {"radius": -1}}', "radius -1 is not a number in [0.01, 10.0]"),
        ("cluster_rules", '{"car": {"radius": NaN}}', "radius nan"),
        ("cluster_rules", '{"car": {"min_points": 0}}', "min_points 0 is not an integer in [1, 100000]"),
        ("cluster_rules", '{"car": 5}', 'expected {"radius"'),
        ("cluster_rules", "{", "not valid JSON"),
        ("lidar_to_camera", [float("nan")] * 16, "expected a list of finite numbers"),
    ],
)
def test_structured_values_in_params_files_get_the_scalar_ranges(name: str, value: object, problem: str) -> None:
    with pytest.raises(SemsegError, match=re.escape(f"fusion_node.{name}: ") + ".*" + re.escape(problem)):
        check_params_file({"fusion_node": {"ros__parameters": {name: value}}}, "params.yaml")


def test_palettes_in_params_files_are_checked() -> None:
    assert validate_params_file({"segmentation_node": {"ros__parameters": {"palette": json.dumps([[1, 2, 3]] * 256)}}}) == []
    for bad in (json.dumps([[1, 2, 3]] * 257), "[[1e400, 0, 0]]", "[[0, 0, 256]]"):
        assert validate_params_file({"segmentation_node": {"ros__parameters": {"palette": bad}}}), bad
