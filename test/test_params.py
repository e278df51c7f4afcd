"""The node parameter schema against config/kitti.yaml and against what the nodes declare."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from semseg_ros.errors import SemsegError
from semseg_ros.fusion.settings import ClassRule, FusionSettings
from semseg_ros.node_params import (
    CONFIGS,
    NODES,
    REAL_MODEL,
    SEGMENTATION_PARAMS,
    SYNTHETIC_MODEL,
    FusionConfig,
    ParamsSource,
    SegmentationConfig,
    check_sources,
)

ROOT = Path(__file__).resolve().parents[1]


def problems_of(data: object, names: dict[str, str] | None = None) -> list[str]:
    """What check_sources refuses in one params mapping (PyYAML's typing, both nodes)."""
    return check_sources([ParamsSource("", data)], names, ros_types=False)[0]


def warnings_of(data: object, names: dict[str, str] | None = None) -> list[str]:
    return check_sources([ParamsSource("", data)], names, ros_types=False)[1]


def test_shipped_params_file_matches_the_schema() -> None:
    data = yaml.safe_load((ROOT / "config" / "kitti.yaml").read_text())
    assert problems_of(data) == []
    for node, params in NODES.items():
        assert set(data[f"/**/{node}"]["ros__parameters"]) == {p.name for p in params}, f"{node}: keep config/kitti.yaml complete"


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
        ({"segmentation_node": {"parameters": 5}}, "segmentation_node.parameters: a value beside ros__parameters (rcl refuses"),
        ({"segmentation_node": 5}, "segmentation_node: expected a key ros__parameters"),
        ({"/**": {"ros__parameters": {"overlay_alpha": 3.0}}}, "/**.overlay_alpha: 3.0 is outside"),
        ({"/**/fusion_node": {"ros__parameters": {"slop": "x"}}}, "/**/fusion_node.slop: expected float"),
    ],
)
def test_problems_are_named(section: dict, problem: str) -> None:
    assert any(problem in found for found in problems_of(section)), problems_of(section)


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
    found = problems_of({"fusion_node": {"ros__parameters": {name: value}}})
    assert len(found) == 1 and re.match(re.escape(f"fusion_node.{name}: ") + ".*" + re.escape(problem), found[0]), found


def test_palettes_in_params_files_are_checked() -> None:
    assert problems_of({"segmentation_node": {"ros__parameters": {"palette": json.dumps([[1, 2, 3]] * 256)}}}) == []
    for bad in (json.dumps([[1, 2, 3]] * 257), "[[1e400, 0, 0]]", "[[0, 0, 256]]"):
        assert problems_of({"segmentation_node": {"ros__parameters": {"palette": bad}}}), bad


def test_files_rcl_accepts_are_accepted_and_typos_warned() -> None:
    data = {
        "/**": {"ros__parameters": {"use_sim_time": True, "start_type_description_service": False, "diagnostics_period": 2.0}},
        "/**/segmentation_node": {"ros__parameters": {"overlay_alpah": 0.3, "backend": "torch"}},
        "/robot/fusion_node": {"ros__parameters": {"slop": 0.07, "qos_overrides": {"/points": {"subscription": {"depth": 5}}}}},
        "camera_driver": {"ros__parameters": {"fps": 10}},
    }
    assert problems_of(data) == []
    assert warnings_of(data) == [
        "/**/segmentation_node.overlay_alpah: no node declares it (did you mean overlay_alpha?)",
        "/robot/fusion_node: matches no semseg_ros node (/segmentation_node, /fusion_node); for that node write /fusion_node or /**/fusion_node; ignored here",
        "camera_driver: matches no semseg_ros node (/segmentation_node, /fusion_node); ignored here",
    ]
    in_robot = {"segmentation_node": "/robot/segmentation_node", "fusion_node": "/robot/fusion_node"}
    assert warnings_of(data, in_robot)[1:] == [
        "camera_driver: matches no semseg_ros node (/robot/segmentation_node, /robot/fusion_node); ignored here"
    ]


SECTIONS = (
    "fusion_node",
    "/fusion_node",
    "/ns/fusion_node",
    "/**",
    "/*",
    "/**/fusion_node",
    "/*/fusion_node",
    "/other/fusion_node",
    "/ns/*",
    "/ns/**",
    "/ns/fuser",
    "fuser",
    "/**/**",
    "/*/*",
    "/ns/**/fusion_node",
    "*",
    "**",
)


@pytest.mark.parametrize(
    "remaps",
    [
        [],
        ["-r", "__ns:=/ns"],
        ["--remap", "fusion_node:__ns:=/a/ns"],
        ["-r", "__ns:=/ns", "-r", "fusion_node:__node:=fuser"],
        ["-r", "__name:=fuser"],
        ["-r", "__ns:=/ns", "-r", "__ns:=/other"],  # the first rule that matches wins
        ["-r", "fusion_node:__ns:=/ns", "-r", "__ns:=/other"],
        ["-r", "__node:=fuser", "-r", "fuser:__ns:=/ns"],  # the name is remapped first, __ns rules match the new one
        ["-r", "__node:=fuser", "-r", "fusion_node:__ns:=/ns"],
        ["-r", "__ns:=/ns", "--", "--ros-args", "-r", "__ns:=/other"],  # rules of several blocks, in order
        ["-r", "segmentation_node:__ns:=/other"],
    ],
)
def test_sections_reach_the_nodes_rcl_gives_them_to(ros: None, remaps: list[str], tmp_path: Path) -> None:
    """section_nodes and remapped_names against real rclpy: which sections set a parameter of a
    fusion_node run with `remaps`. Before, `/ns/fusion_node` was checked against a node in / and `fusion_node`
    against one in /ns (rcl reads a section without a leading slash as absolute), renames were not seen."""
    from rclpy.node import Node

    from semseg_ros.node_params import remapped_names, section_nodes

    args = ["--ros-args", *remaps]
    for section in SECTIONS:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump({section: {"ros__parameters": {"probe": 7}}}))
        node = Node("fusion_node", cli_args=[*args, "--params-file", str(path)])
        node.declare_parameter("probe", 0)
        reached, name = node.get_parameter("probe").value == 7, node.get_fully_qualified_name()
        node.destroy_node()
        namespace, own = remapped_names(args)["fusion_node"]
        assert f"{namespace.rstrip('/')}/{own}" == name
        assert ("fusion_node" in section_nodes(section, names={"fusion_node": name})) == reached, section


def test_names_come_from_the_ros_arguments(tmp_path: Path) -> None:
    """`semseg node ... --ros-args -r __ns:=/robot` checks the file as rcl will apply it: a bad value in a
    section for another namespace is not the node's (warned as reaching no node), one in its own is refused."""
    from semseg_ros.ros.node_process import ros_arguments

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/other/fusion_node": {"ros__parameters": {"slop": -1.0}}}))
    in_robot = ["--ros-args", "-r", "__ns:=/robot"]
    assert ros_arguments(path, in_robot) == ["semseg", "--ros-args", "--params-file", str(path), *in_robot]
    path.write_text(yaml.safe_dump({"/robot/fusion_node": {"ros__parameters": {"slop": -1.0}}}))
    with pytest.raises(SemsegError, match=r"/robot/fusion_node\.slop"):
        ros_arguments(path, in_robot)
    assert ros_arguments(path, []) == ["semseg", "--ros-args", "--params-file", str(path)]  # a node in / never reads it


def test_raw_params_files_are_checked_like_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--ros-args --params-file F` straight to rcl gets the checks `--params F` gets (before: none, so a
    mistyped section reached no node and nobody said so)."""
    from semseg_ros.ros.node_process import ros_arguments

    path = tmp_path / "raw.yaml"
    path.write_text(yaml.safe_dump({"fusion_nod": {"ros__parameters": {"slop": 0.05}}}))
    raw = ["--ros-args", "--params-file", str(path)]
    assert ros_arguments(None, raw) == ["semseg", *raw]
    assert (
        capsys.readouterr().err.strip()
        == f"semseg: warning: {path}: fusion_nod: matches no semseg_ros node (/segmentation_node, /fusion_node); ignored here"
    )
    path.write_text(yaml.safe_dump({"fusion_node": {"ros__parameters": {"slop": "soon"}}}))
    with pytest.raises(SemsegError, match=r"raw.yaml: fusion_node.slop: expected float"):
        ros_arguments(None, raw)
    assert ros_arguments(None, ["--ros-args", "--params-file", str(tmp_path / "absent.yaml")])[-1].endswith(
        "absent.yaml"
    )  # rcl's own error


def test_ros2_param_dump_output_is_accepted(ros: None, tiny_checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """What `ros2 param dump /fusion_node` writes (every declared parameter, rclpy's own included) loads
    back through rcl unchanged, without a warning."""
    from rclpy.parameter import Parameter

    from semseg_ros.ros.fusion_node import FusionNode

    node = FusionNode(parameter_overrides=[Parameter("calibration_source", value="camera_info"), Parameter("slop", value=0.07)])
    dump = {"/fusion_node": {"ros__parameters": {name: p.value for name, p in node._parameters.items()}}}
    node.destroy_node()
    assert {"use_sim_time", "start_type_description_service"} <= set(dump["/fusion_node"]["ros__parameters"])
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump(dump))
    assert problems_of(dump) == [] and warnings_of(dump) == []
    capfd.readouterr()
    again = FusionNode(cli_args=["--ros-args", "--params-file", str(path)])
    stored = again.config.as_dict()
    assert stored == {name: value for name, value in dump["/fusion_node"]["ros__parameters"].items() if name in stored}
    again.destroy_node()
    assert "WARN" not in capfd.readouterr().err


def test_a_typo_in_a_wildcard_section_is_warned_by_the_node(ros: None, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from semseg_ros.ros.fusion_node import FusionNode

    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"use_sim_time": False, "calibration_source": "camera_info", "slpo": 0.1}}}))
    capfd.readouterr()
    node = FusionNode(cli_args=["--ros-args", "--params-file", str(path)])
    node.destroy_node()
    assert "parameter slpo is given but no semseg_ros node declares it; ignored (did you mean slop?)" in capfd.readouterr().err


# Values of config/kitti.yaml that differ from the schema defaults on purpose, and why. Any other
# difference is a default written twice that drifted.
KITTI_OVERRIDES = {
    ("segmentation_node", "fp16"): "KITTI runs opt into half precision on CUDA (ignored on a CPU)",
    ("segmentation_node", "input_height"): "256x832 keeps KITTI's 1242x375 shape (the model's own size is 0, 0)",
    ("segmentation_node", "input_width"): "see input_height",
    ("fusion_node", "calibration_source"): "kitti2bag publishes camera_info; the schema default reads calib files",
    ("fusion_node", "lidar_to_camera"): "KITTI 2011_09_26's extrinsic, for the camera_info source",
}


def test_kitti_yaml_values_are_the_schema_defaults_or_listed_overrides() -> None:
    data = yaml.safe_load((ROOT / "config" / "kitti.yaml").read_text())
    differing = {
        (node, p.name) for node, params in NODES.items() for p in params if data[f"/**/{node}"]["ros__parameters"][p.name] != p.default
    }
    assert differing == set(KITTI_OVERRIDES)


def test_typed_configs_have_one_field_per_parameter_of_its_type() -> None:
    types = {bool: "bool", int: "int", float: "float", str: "str", list: "Sequence[float]"}
    for node, config in CONFIGS.items():
        fields = dataclasses.fields(config)
        assert [f.name for f in fields] == [p.name for p in NODES[node]], node
        for field, param in zip(fields, NODES[node], strict=True):
            assert field.type == types[type(param.default)], param.name  # annotations are strings (postponed)
            assert field.default is dataclasses.MISSING, f"{param.name}: the default lives in the Param only"
        defaults = config.defaults()
        assert defaults.as_dict() == {p.name: p.default for p in NODES[node]}
        with pytest.raises(SemsegError, match="missing parameters"):
            config.from_values({})


def test_fusion_and_cluster_settings_take_the_parameter_defaults() -> None:
    config = FusionConfig.defaults()
    assert config.fusion_settings() == FusionSettings()
    assert (config.cluster_radius, config.cluster_min_points, config.voxel_size) == (ClassRule().radius, ClassRule().min_points, 0.0)
    changed = config.updated({"min_depth": 2.0, "slop": 0.1, "model": "ignored.pt"})
    assert changed.fusion_settings().min_depth == 2.0 and changed.slop == 0.1 and config.min_depth == FusionSettings().min_depth
    assert SegmentationConfig.defaults().input_size is None
    assert SegmentationConfig.defaults().updated({"input_height": 256, "input_width": 832}).input_size == (256, 832)


def test_the_default_model_is_one_shipped_file() -> None:
    data = yaml.safe_load((ROOT / "config" / "kitti.yaml").read_text())
    assert SegmentationConfig.defaults().model == REAL_MODEL == data["/**/segmentation_node"]["ros__parameters"]["model"]
    assert (ROOT / "models" / REAL_MODEL).is_file() and (ROOT / "models" / SYNTHETIC_MODEL).is_file()


RCL_SCALARS = (
    "1e-1", "~", "1", "1_0", "017", "08", "0x1F", "0x", "yes", "On", "n", "null", ".inf", "-.Inf", "nan", "inf",
    "1e999", "4.9e-324", "0x1p3", "+5", "1.", ".5", "9223372036854775808", '"1"', "'yes'", "[1.0, 2.5]", "[1, 2]",
    "[1, 2.5]", "[a, 1]", "[]", "''", "", "&anchor 3", "!!bool y", "!!str 123", "!!float 1", "!!int 1_0", "!foo x",
    "[!!str 1, a]", "[1, !!str 2]", "\u0660.\u0660\u0665", "\u00a00.2", "1e\u0661", "1" * 5000, "0x" + "f" * 5000, "| \n      17",
)  # fmt: skip


@pytest.mark.parametrize("text", RCL_SCALARS)
def test_params_files_are_read_as_rcl_reads_them(ros: None, text: str, tmp_path: Path) -> None:
    """schema.read_yaml(ros_params=True) against real rcl: the same type and value for every scalar form,
    and a refusal where rcl refuses the file. Before, PyYAML's reading refused `slop: 1e-1` (a string to
    it, 0.1 to rcl) and passed `slop: 1` (rclpy refuses an integer for a float parameter)."""
    import math

    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node

    from semseg_ros import schema

    path = tmp_path / "params.yaml"
    path.write_text(f"/**:\n  ros__parameters:\n    probe: {text}\n")
    try:
        node = Node("probe_node", cli_args=["--ros-args", "--params-file", str(path)])
    except Exception:  # rcl refuses the file
        with pytest.raises(SemsegError):
            schema.read_yaml(path, ros_params=True)
        return
    real = node.declare_parameter("probe", descriptor=ParameterDescriptor(dynamic_typing=True)).value
    node.destroy_node()
    ours = schema.read_yaml(path, ros_params=True)["/**"]["ros__parameters"]["probe"]
    if real is None:  # rcl reads an empty list as "no value" (our check then refuses it for a declared parameter)
        assert ours == []
    elif isinstance(real, float) and math.isnan(real):
        assert isinstance(ours, float) and math.isnan(ours)
    else:
        assert type(ours) is type(real) and ours == real, (ours, real)


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("fusion_node:\n  ros__parameters:\n    slop: 1e-1\n", None),
        ("fusion_node:\n  ros__parameters:\n    slop: 1\n", "integer 1 for a float parameter"),
        ("fusion_node:\n  ros__parameters:\n    cluster_classes: ~\n", None),
        ("robot:\n  fusion_node:\n    ros__parameters:\n      slop: -1.0\n", "robot/fusion_node.slop: -1.0 is outside"),  # node in /robot
        ("fusion_node:\n  ros__parameters:\n    slop: -1.0\nfusion_node:\n  ros__parameters:\n    max_range: 50.0\n", "slop: -1.0"),
        ("fusion.node:\n  ros__parameters:\n    slop: 0.1\n", "not a node name rcl accepts"),
        ("//fusion_node:\n  ros__parameters:\n    slop: 0.1\n", "not a node name rcl accepts"),
        ("fusion_node/:\n  ros__parameters:\n    slop: 0.1\n", "not a node name rcl accepts"),
        ("/**:\n  ros__parameters:\n    slop: 5.0\nfusion_node:\n  ros__parameters:\n    slop: 0.2\n", None),  # the last value counts
        ("fusion_node:\n  ros__parameters:\n    slop: 0.2\n/**:\n  ros__parameters:\n    slop: 5.0\n", "/**.slop: 5.0 is outside"),
        ("fusion_node:\n  ros__parameters:\n    slop: []\n", "slop: an empty value"),
        ("fusion_node:\n  ros__parameters:\n    use_sim_time: 1\n", "use_sim_time: expected bool"),  # a traceback before
        ("fusion_node:\n  ros__parameters:\n    fp16: !!bool y\n", None),  # a traceback before (PyYAML's bool)
        ("fusion_node:\n  x: 1\n  ros__parameters:\n    slop: 0.1\n", "fusion_node.x: a value beside ros__parameters"),
    ],
)
def test_params_file_checks_follow_rcl(yaml_text: str, problem: str | None, tmp_path: Path) -> None:
    """What the pip-only runners check before starting, on files read as rcl reads them: scientific
    notation and `~` accepted, an integer for a float refused, nested namespaces and a section given twice
    (rcl merges both) checked, section names rcl refuses named as such (before: "matches no node")."""
    from semseg_ros.ros.node_process import ros_arguments

    path = tmp_path / "params.yaml"
    path.write_text(yaml_text)
    remaps = ["--ros-args", "-r", "__ns:=/robot"] if yaml_text.startswith("robot:") else []
    if problem is None:
        assert ros_arguments(path, remaps)[3] == str(path)
    else:
        with pytest.raises(SemsegError, match=re.escape(problem)):
            ros_arguments(path, remaps)


@pytest.mark.parametrize(
    ("files", "ros_args"),
    [
        ([], ["-p", "slop:=0.3", "-p", "fusion_node:slop:=5.0"]),  # `/**` (new) after kitti.yaml's fusion_node: 0.3
        ([], ["-p", "slop:=5.0", "-p", "fusion_node:slop:=0.3"]),
        ([], ["-p", "slop:=0.3", "-p", "fusion_node:slop:=5.0", "-p", "slop:=0.4"]),
        (["/**:\n  ros__parameters:\n    slop: 0.1\nfusion_node:\n  ros__parameters:\n    slop: 0.2\n"], ["-p", "slop:=-5.0"]),
        (
            [
                "fusion_node:\n  ros__parameters:\n    slop: 0.1\n/**:\n  ros__parameters:\n    slop: 0.2\n",
                "fusion_node:\n  ros__parameters:\n    slop: 5.0\n",
            ],
            [],
        ),
        (["fusion_node:\n  ros__parameters:\n    slop: 0.1\n/**:\n  ros__parameters:\n    slop: 5.0\n"], ["-p", "fusion_node:slop:=0.3"]),
        (["/fusion_node:\n  ros__parameters:\n    slop: 0.2\nfusion_node:\n  ros__parameters:\n    slop: 5.0\n"], []),
    ],
)
def test_overrides_reach_a_node_in_rcls_order(ros: None, files: list[str], ros_args: list[str], tmp_path: Path) -> None:
    """rcl merges all overrides into one entry per section name as written, each kept where its name first
    appeared (kitti.yaml's `fusion_node` before a `-p`'s `/**`), and rclpy takes the last matching entry: the
    check must refuse exactly what the real node refuses (before: "the last value in argument order")."""
    from rclpy.node import Node

    from semseg_ros.node_params import FusionConfig
    from semseg_ros.ros.params import declare

    paths = []
    for index, text in enumerate(files):
        paths.append(tmp_path / f"f{index}.yaml")
        paths[-1].write_text(text)
    extra = ["--ros-args", *(arg for path in paths for arg in ("--params-file", str(path))), *ros_args]
    ours_refuses = not _checks(extra)
    node = Node("fusion_node", cli_args=["--ros-args", "--params-file", str(KITTI_YAML_PATH), *extra])
    try:
        declare(node, FusionConfig)
        real_refuses = False
    except SemsegError:
        real_refuses = True
    finally:
        node.destroy_node()
    assert ours_refuses == real_refuses


KITTI_YAML_PATH = ROOT / "config" / "kitti.yaml"


def _checks(extra: list[str]) -> bool:
    from semseg_ros.ros.node_process import ros_arguments

    try:
        ros_arguments(KITTI_YAML_PATH, extra, nodes=["fusion_node"])
    except SemsegError:
        return False
    return True


def test_only_the_nodes_that_run_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    """`semseg node fusion` does not refuse a segmentation-only value (the fusion node ignores it), nor warns
    about the shipped file's segmentation_node section (it is a node of ours, only not run here)."""
    from semseg_ros.ros.node_process import ros_arguments

    ros_arguments(KITTI_YAML_PATH, [], nodes=["fusion_node"])
    assert capsys.readouterr().err == ""
    ros_arguments(KITTI_YAML_PATH, ["--ros-args", "-r", "__node:=fz"], nodes=["fusion_node"])  # renamed: only its own section warns
    assert capsys.readouterr().err.splitlines() == [
        f"semseg: warning: {KITTI_YAML_PATH}: /**/fusion_node: matches no semseg_ros node (/fz); for that node write /fz or "
        "/**/fz; ignored here"
    ]
    with pytest.raises(SemsegError, match=r"name segmentation_node and fusion_node alike \(/fz\): rename each with NODE:__node:=NAME"):
        ros_arguments(KITTI_YAML_PATH, ["--ros-args", "-r", "__node:=fz"])  # both nodes of one launch

    assert ros_arguments(None, ["--ros-args", "-p", "overlay_alpha:=5.0"], nodes=["fusion_node"])[-1] == "overlay_alpha:=5.0"
    with pytest.raises(SemsegError, match=r"overlay_alpha: 5\.0 is outside"):
        ros_arguments(None, ["--ros-args", "-p", "overlay_alpha:=5.0"], nodes=["segmentation_node"])


def test_ros_args_values_count_in_order(tmp_path: Path) -> None:
    """`--ros-args -p` values and later `--params-file`s replace earlier values as rcl applies them: only
    each node's last value is checked (before: every file on its own, so a corrected value was refused)."""
    from semseg_ros.ros.node_process import ros_arguments

    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text("fusion_node:\n  ros__parameters:\n    slop: 5.0\n")
    good.write_text("fusion_node:\n  ros__parameters:\n    slop: 0.2\n")
    assert ros_arguments(bad, ["--ros-args", "-p", "slop:=0.2"])[-1] == "slop:=0.2"
    assert ros_arguments(bad, ["--ros-args", "--params-file", str(good)])[-1] == str(good)
    with pytest.raises(SemsegError, match=r"^--ros-args -p: /\*\*\.slop: 5\.0 is outside"):
        ros_arguments(good, ["--ros-args", "-p", "slop:=5.0"])
    with pytest.raises(SemsegError, match=r"fusion_node\.slop: integer 1 for a float parameter"):
        ros_arguments(None, ["--ros-args", "-p", "fusion_node:slop:=1"])


def test_the_shipped_file_reaches_nodes_in_any_namespace(ros: None, capsys: pytest.CaptureFixture[str]) -> None:
    """config/kitti.yaml's `/**/NODE` sections reach a namespaced robot's nodes (before: `fusion_node:` reached
    only /fusion_node, and a node in /myrobot started from the schema's kitti_raw default and died), and a
    user's `fusion_node:` section after it still wins, as rcl takes the last matching entry."""
    from rclpy.node import Node

    from semseg_ros.node_params import FusionConfig
    from semseg_ros.ros.node_process import ros_arguments
    from semseg_ros.ros.params import declare

    ros_arguments(KITTI_YAML_PATH, ["--ros-args", "-r", "__ns:=/myrobot"])
    assert capsys.readouterr().err == ""  # no section left unmatched
    node = Node("fusion_node", namespace="/myrobot", cli_args=["--ros-args", "--params-file", str(KITTI_YAML_PATH)])
    try:
        assert declare(node, FusionConfig).calibration_source == "camera_info"
    finally:
        node.destroy_node()
    node = Node("fusion_node", cli_args=["--ros-args", "--params-file", str(KITTI_YAML_PATH), "-p", "fusion_node:slop:=0.02"])
    try:
        assert declare(node, FusionConfig).slop == 0.02
    finally:
        node.destroy_node()
