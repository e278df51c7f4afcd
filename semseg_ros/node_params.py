"""The ROS parameter schema of every node: the one source of truth for names, types, defaults and ranges.

The nodes declare exactly these parameters (with descriptors built from them) and read them as one
typed, frozen configuration each (`SegmentationConfig`, `FusionConfig`: fields named and typed as the
parameters, defaults only in the Param entries); config/kitti.yaml is checked against them, and the
README's parameter tables are generated from them. Plain Python: no rclpy import, so the schema can be
read and validated anywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from semseg_ros.calibration import CALIBRATION_SOURCES, CalibrationSource, rigid_problem
from semseg_ros.errors import SemsegError
from semseg_ros.fusion.settings import ClassRule, ClusterSettings, FusionSettings

RELIABILITY = ("reliable", "best_effort")
MASK_IMAGES = ("rectified", "raw")
CLUSTER_RADIUS_RANGE = (0.01, 10.0)  # metres; `cluster_radius` and every radius in `cluster_rules`
CLUSTER_MIN_POINTS_RANGE = (1, 100000)  # `cluster_min_points` and every min_points in `cluster_rules`
MAX_JSON_CHARS = 65536  # structured string parameters and the `labels` message


def load_json(text: str, limit: int = MAX_JSON_CHARS) -> Any:
    """`json.loads` bounded in size; any failure (syntax, nesting too deep for the parser) is a SemsegError."""
    if len(text) > limit:
        raise SemsegError(f"{len(text)} characters of JSON, more than {limit}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SemsegError(f"not valid JSON ({' '.join(str(exc).split())[:120]})") from None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_colors(colors: Any, what: str = "colours") -> list[tuple[int, int, int]]:
    """A JSON list of 1-256 [r, g, b] integer triples, each 0-255 (SemsegError otherwise, its message prefixed
    with `what: ` unless `what` is empty)."""
    prefix = f"{what}: " if what else ""
    if not isinstance(colors, list) or not 1 <= len(colors) <= 256:
        raise SemsegError(f"{prefix}expected a list of 1-256 [r, g, b] entries")
    for color in colors:
        if not (
            isinstance(color, list)
            and len(color) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)
        ):
            raise SemsegError(f"{prefix}{str(color)[:40]} is not [r, g, b] with integers 0-255")
    return [(c[0], c[1], c[2]) for c in colors]


def parse_palette(text: str) -> list[tuple[int, int, int]] | None:
    """The `palette` parameter: '' (None: the model's colours) or a JSON list of [r, g, b] (0-255, at most 256)."""
    return parse_colors(load_json(text), "") if text.strip() else None  # Param.check and the node name the parameter


def parse_class_names(text: str) -> list[str]:
    """`cluster_classes`: comma-separated class names ('' = none)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_cluster_rules(text: str) -> dict[str, dict[str, float | int]]:
    """`cluster_rules`: per-class overrides of `cluster_radius` / `cluster_min_points`, either key optional, each
    value in the range of its scalar sibling. Written as a JSON list [{"class": c, "radius": m, "min_points": n}]:
    the form `ros2 param set` and `ros2 param load` carry (rclpy's get_parameter_value re-reads every string as
    YAML and fails on a mapping). The JSON object {c: {"radius": m, "min_points": n}} is also read (from files).
    Returns {class: {"radius": m, "min_points": n}}; SemsegError says what is wrong."""
    data = load_json(text) if text.strip() else []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list) and all(isinstance(rule, dict) for rule in data):
        items = [(rule.get("class"), {k: v for k, v in rule.items() if k != "class"}) for rule in data]
        names = [name for name, _ in items]
        bad = [name for name in names if not isinstance(name, str) or not name]
        if bad:
            raise SemsegError(f'every rule needs "class": a class name, got {str(bad[0])[:40]}')
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SemsegError(f"more than one rule for {', '.join(duplicates)}")
    else:
        raise SemsegError('expected a JSON list [{"class": c, "radius": m, "min_points": n}, ...]')
    rules: dict[str, dict[str, float | int]] = {}
    for name, rule in items:
        if not isinstance(rule, dict) or not set(rule) <= {"radius", "min_points"}:
            raise SemsegError(f'{name}: expected {{"radius": m, "min_points": n}}, got {str(rule)[:60]}')
        radius, points = rule.get("radius", CLUSTER_RADIUS_RANGE[0]), rule.get("min_points", 1)
        if not is_number(radius) or not CLUSTER_RADIUS_RANGE[0] <= radius <= CLUSTER_RADIUS_RANGE[1]:
            raise SemsegError(f"{name}: radius {radius!r} is not a number in {list(CLUSTER_RADIUS_RANGE)} m")
        if (
            not isinstance(points, int)
            or isinstance(points, bool)
            or not CLUSTER_MIN_POINTS_RANGE[0] <= points <= CLUSTER_MIN_POINTS_RANGE[1]
        ):
            raise SemsegError(f"{name}: min_points {points!r} is not an integer in {list(CLUSTER_MIN_POINTS_RANGE)}")
        rules[name] = rule
    return rules


@dataclass(frozen=True)
class Param:
    name: str
    default: bool | int | float | str | list[float]
    description: str
    live: bool = False  # may change at run time (`ros2 param set`); otherwise read-only
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[Any], object] | None = None  # structured content (JSON strings): raises SemsegError

    def check(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if isinstance(self.default, list):
            if not isinstance(value, list | tuple) or not all(is_number(v) for v in value):
                return f"{self.name}: expected a list of finite numbers, got {str(value)[:80]}"
            if self.default and len(value) != len(self.default):
                return f"{self.name}: expected {len(self.default)} numbers, got {len(value)}"
            return None
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return f"{self.name}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
        if self.range is not None and isinstance(value, int | float) and not self.range[0] <= value <= self.range[1]:
            return f"{self.name}: {value} is outside [{self.range[0]}, {self.range[1]}]"
        if self.choices is not None and value not in self.choices:
            return f"{self.name}: {value!r} is not one of {', '.join(self.choices)}"
        if self.parse is not None:
            try:
                self.parse(value)
            except SemsegError as exc:
                return f"{self.name}: {exc}"
        return None


# The shipped models (models/): the real one is the default wherever images are real; the synthetic one
# is scored by `make demo` against the synthetic world's ground truth.
REAL_MODEL = "camvid_unet_mobilenet.pt"
SYNTHETIC_MODEL = "synthetic_unet_mobilenet.pt"

SEGMENTATION_NODE = "segmentation_node"
SEGMENTATION_PARAMS: tuple[Param, ...] = (
    Param(
        "model",
        REAL_MODEL,
        "model file (.pt, .onnx or .engine); relative paths are also looked up in share/semseg_ros/models",
    ),
    Param("label_set", "", "label set the model must predict, e.g. cityscapes19 ('' = whatever the model predicts)"),
    Param(
        "backend",
        "auto",
        "inference backend (auto on a CPU: the faster of onnxruntime and openvino, timed at start)",
        choices=("auto", "torch", "onnxruntime", "openvino", "tensorrt"),
    ),
    Param(
        "precision",
        "auto",
        "onnxruntime/openvino: fp32, int8 (cached calibrated model) or auto (int8 where verified)",
        choices=("auto", "fp32", "int8"),
    ),
    Param(
        "upsampling",
        "nearest",
        "CPU, mask only: nearest (argmax at network size, fastest) or bilinear (logits upsampled: +0.4 mIoU point)",
        choices=("nearest", "bilinear"),
        live=True,
    ),
    Param("device", "auto", "auto, cpu, cuda or cuda:N"),
    Param("fp16", False, "half precision on CUDA (torch, TensorRT)"),
    Param("cuda_graphs", False, "replay the torch network from a CUDA graph (fixed input size)"),
    Param("cache_dir", "", "where exported ONNX files and TensorRT engines are cached ('' = ~/.cache/semseg_ros)"),
    Param("input_height", 0, "network input height (0: the model's own)", range=(0, 8192)),
    Param("input_width", 0, "network input width (0: the model's own)", range=(0, 8192)),
    Param("keep_aspect", False, "letterbox instead of stretching to the network size"),
    Param(
        "input_transport",
        "raw",
        "subscribe to sensor_msgs/Image on `image` or CompressedImage on `image/compressed`",
        choices=("raw", "compressed"),
    ),
    Param(
        "input_reliability",
        "reliable",
        "QoS reliability of the image subscription (reliable: every frame of a reliable publisher arrives; "
        "best_effort: also hears best-effort publishers, loses large frames; see docs/reliability.md)",
        choices=RELIABILITY,
    ),
    Param("input_depth", 1, "QoS depth of the image subscription", range=(1, 100)),
    Param(
        "max_image_pixels",
        50_000_000,
        "reject images of more pixels (width * height; compressed ones by their header, before decoding)",
        range=(1, 1_000_000_000),
    ),
    Param("output_reliability", "reliable", "QoS reliability of the outputs", choices=RELIABILITY),
    Param("output_depth", 2, "QoS depth of the outputs", range=(1, 100)),
    Param("publish_mask", True, "publish `mask` (mono8 class ids)", live=True),
    Param("publish_color_mask", True, "publish `color_mask` (rgb8 palette colours)", live=True),
    Param("publish_overlay", True, "publish `overlay` (rgb8 blend of image and colours)", live=True),
    Param("publish_confidence", True, "publish `confidence` (mono8, max softmax * 255)", live=True),
    Param("overlay_alpha", 0.5, "weight of the class colours in `overlay`", live=True, range=(0.0, 1.0)),
    Param(
        "palette", "", "JSON list of [r, g, b] per class overriding the model's colours ('' = the model's)", live=True, parse=parse_palette
    ),
    Param("max_rate_hz", 0.0, "process at most this many frames per second (0 = as fast as frames come)", live=True, range=(0.0, 1000.0)),
    Param("warmup_runs", 2, "dummy frames run before the node reports ready", range=(0, 100)),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0)),
)

FUSION_NODE = "fusion_node"
IDENTITY_4X4 = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
FUSION_PARAMS: tuple[Param, ...] = (
    Param(
        "calibration_source",
        "kitti_raw",
        "kitti_raw: calib_cam_to_cam + calib_velo_to_cam in kitti_calib_dir; kitti_object: kitti_calib_file; "
        "camera_info: P from `camera_info` plus lidar_to_camera; camera_info_tf: P from `camera_info` plus a tf2 lookup (full ROS installs)",
        choices=CALIBRATION_SOURCES,
    ),
    Param("kitti_calib_dir", "", "KITTI raw date folder holding calib_cam_to_cam.txt and calib_velo_to_cam.txt"),
    Param(
        "kitti_calib_file",
        "",
        "KITTI object, tracking or odometry calib file (P0-P3 with R0_rect/R_rect and Tr_velo_to_cam/Tr_velo_cam, or Tr); "
        "the image size is taken from the masks",
    ),
    Param("camera_index", 2, "KITTI camera whose images the masks come from", range=(0, 3)),
    Param(
        "lidar_to_camera", IDENTITY_4X4, "row-major 4x4 transform from the lidar frame to the camera's optical frame (camera_info source)"
    ),
    Param(
        "mask_image",
        "rectified",
        "which image the masks are segmented from (camera_info sources, as ROS image_geometry): rectified: project with P, "
        "D does not apply; raw: project with K and D (plumb_bob, rational_polynomial, equidistant)",
        choices=MASK_IMAGES,
    ),
    Param("slop", 0.05, "largest stamp difference (s) between a cloud and the mask fused with it", live=True, range=(0.0, 1.0)),
    Param("queue_size", 10, "messages kept per stream while waiting for a partner", range=(1, 100)),
    Param("points_reliability", "reliable", "QoS reliability of the `points` subscription (see docs/reliability.md)", choices=RELIABILITY),
    Param("points_depth", 5, "QoS depth of the `points` subscription", range=(1, 100)),
    Param("mask_reliability", "reliable", "QoS reliability of the `mask` and `confidence` subscriptions", choices=RELIABILITY),
    Param("mask_depth", 10, "QoS depth of the `mask` and `confidence` subscriptions", range=(1, 100)),
    Param(
        "camera_info_reliability",
        "best_effort",
        "QoS reliability of the `camera_info` subscription (best_effort also hears reliable publishers)",
        choices=RELIABILITY,
    ),
    Param("camera_info_depth", 1, "QoS depth of the `camera_info` subscription", range=(1, 100)),
    Param("use_confidence", False, "subscribe `confidence` and add a per-point confidence field"),
    Param(
        "min_depth", FusionSettings.min_depth, "points closer to the camera than this (m) stay unlabelled", live=True, range=(0.0, 100.0)
    ),
    Param(
        "max_depth", FusionSettings.max_depth, "points farther than this (m) stay unlabelled (0 = no limit)", live=True, range=(0.0, 1000.0)
    ),
    Param("occlusion", FusionSettings.occlusion, "leave points hidden behind nearer surfaces unlabelled", live=True),
    Param("occlusion_window", FusionSettings.occlusion_window, "half-size (px) of the nearest-depth window", live=True, range=(0, 20)),
    Param(
        "occlusion_tolerance",
        FusionSettings.occlusion_tolerance,
        "depth margin (m) before a point counts as hidden ...",
        live=True,
        range=(0.0, 50.0),
    ),
    Param(
        "occlusion_tolerance_ratio",
        FusionSettings.occlusion_tolerance_ratio,
        "... plus this fraction of the depth",
        live=True,
        range=(0.0, 10.0),
    ),
    Param("drop_unlabelled", False, "publish only points that got a class", live=True),
    Param(
        "cluster_classes",
        "car,truck,bus,person,rider,bicycle,motorcycle,pedestrian,bicyclist",
        "comma-separated class names to cluster, any case ('' = none); at start names of other label sets are skipped, "
        "names of none warned about; set live, names the model's label set lacks are refused",
        live=True,
        parse=parse_class_names,
    ),
    Param("cluster_radius", ClassRule.radius, "default linking distance (m) of a cluster", live=True, range=CLUSTER_RADIUS_RANGE),
    Param("cluster_min_points", ClassRule.min_points, "default smallest cluster", live=True, range=CLUSTER_MIN_POINTS_RANGE),
    Param(
        "cluster_rules",
        "["
        + ", ".join(
            f'{{"class": "{c}", "radius": 0.4, "min_points": 5}}' for c in ("person", "rider", "bicycle", "pedestrian", "bicyclist")
        )
        + "]",
        'JSON list of per-class overrides [{"class": c, "radius": m, "min_points": n}], in the ranges of cluster_radius and '
        "cluster_min_points",
        live=True,
        parse=parse_cluster_rules,
    ),
    Param("voxel_size", ClusterSettings.voxel, "voxel downsampling (m) before linking (0 = off)", live=True, range=(0.0, 5.0)),
    Param("publish_markers", True, "publish `clusters` (MarkerArray: boxes and class names)", live=True),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0)),
)

C = TypeVar("C", bound="NodeConfig")


@dataclass(frozen=True)
class NodeConfig:
    """A node's parameter values, typed: one field per Param of `PARAMS`, same name, same type.

    No field has a default: the Param entries hold them, and the node fills every field from its
    declared parameters (`from_values`); live changes make a new config (`updated`).
    """

    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def problem(self) -> str | None:
        """Values fine one by one but not together ("name: why"), or None."""
        return None

    @classmethod
    def from_values(cls: type[C], values: Mapping[str, Any]) -> C:
        """From {parameter name: value}, values already checked against the schema. Raises SemsegError
        naming a missing or unknown parameter."""
        names = [p.name for p in cls.PARAMS]
        missing, unknown = [n for n in names if n not in values], [n for n in values if n not in names]
        if missing or unknown:
            raise SemsegError(f"{cls.__name__}: missing parameters {missing}, unknown {unknown}")
        return cls(**{name: values[name] for name in names})

    @classmethod
    def defaults(cls: type[C]) -> C:
        """Every parameter at its schema default."""
        return cls.from_values({p.name: p.default for p in cls.PARAMS})

    def updated(self: C, changes: Mapping[str, Any]) -> C:
        """A copy with some parameters changed (names of other nodes' parameters are ignored)."""
        own = {p.name for p in self.PARAMS}
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if k in own})

    def as_dict(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in self.PARAMS}


@dataclass(frozen=True)
class SegmentationConfig(NodeConfig):
    """segmentation_node's parameters (SEGMENTATION_PARAMS: meaning, units, ranges, defaults)."""

    PARAMS: ClassVar[tuple[Param, ...]] = SEGMENTATION_PARAMS
    model: str
    label_set: str
    backend: str
    precision: str
    upsampling: str
    device: str
    fp16: bool
    cuda_graphs: bool
    cache_dir: str
    input_height: int
    input_width: int
    keep_aspect: bool
    input_transport: str
    input_reliability: str
    input_depth: int
    max_image_pixels: int
    output_reliability: str
    output_depth: int
    publish_mask: bool
    publish_color_mask: bool
    publish_overlay: bool
    publish_confidence: bool
    overlay_alpha: float
    palette: str
    max_rate_hz: float
    warmup_runs: int
    diagnostics_period: float

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) of the network input, None for the model's own (either parameter 0)."""
        return (self.input_height, self.input_width) if self.input_height and self.input_width else None


@dataclass(frozen=True)
class FusionConfig(NodeConfig):
    """fusion_node's parameters (FUSION_PARAMS: meaning, units, ranges, defaults)."""

    PARAMS: ClassVar[tuple[Param, ...]] = FUSION_PARAMS
    calibration_source: str
    kitti_calib_dir: str
    kitti_calib_file: str
    camera_index: int
    lidar_to_camera: Sequence[float]
    mask_image: str
    slop: float
    queue_size: int
    points_reliability: str
    points_depth: int
    mask_reliability: str
    mask_depth: int
    camera_info_reliability: str
    camera_info_depth: int
    use_confidence: bool
    min_depth: float
    max_depth: float
    occlusion: bool
    occlusion_window: int
    occlusion_tolerance: float
    occlusion_tolerance_ratio: float
    drop_unlabelled: bool
    cluster_classes: str
    cluster_radius: float
    cluster_min_points: int
    cluster_rules: str
    voxel_size: float
    publish_markers: bool
    diagnostics_period: float

    def calibration(self) -> CalibrationSource:
        """The calibration parameters as one source (raises CalibrationError for an incomplete one)."""
        return CalibrationSource(
            self.calibration_source, self.kitti_calib_dir, self.kitti_calib_file, self.camera_index, self.lidar_to_camera, self.mask_image
        )

    def problem(self) -> str | None:
        """Values fine one by one but not together, as "name: why" (checked at start and on live changes)."""
        if self.max_depth and self.min_depth >= self.max_depth:
            return f"min_depth {self.min_depth} must be below max_depth {self.max_depth} (0 = no limit): every point would stay unlabelled"
        why = rigid_problem(self.lidar_to_camera)
        return f"lidar_to_camera: {why}" if why else None

    def fusion_settings(self) -> FusionSettings:
        return FusionSettings(
            self.min_depth, self.max_depth, self.occlusion, self.occlusion_window, self.occlusion_tolerance, self.occlusion_tolerance_ratio
        )


NODES: dict[str, tuple[Param, ...]] = {SEGMENTATION_NODE: SEGMENTATION_PARAMS, FUSION_NODE: FUSION_PARAMS}
CONFIGS: dict[str, type[NodeConfig]] = {SEGMENTATION_NODE: SegmentationConfig, FUSION_NODE: FusionConfig}


ROS_OWN_PARAMS = ("use_sim_time", "start_type_description_service")  # declared by every rclpy node
ROS_OWN_PREFIXES = ("qos_overrides.",)  # `ros2 param dump` writes these for publishers that allow them


def is_ros_own(name: str) -> bool:
    return name in ROS_OWN_PARAMS or name.startswith(ROS_OWN_PREFIXES)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as rcl reads them: {"a": {"b": 1}} -> {"a.b": 1} (an empty mapping is a value)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def section_nodes(section: str, nodes: dict[str, tuple[Param, ...]] = NODES, names: Mapping[str, str] | None = None) -> list[str]:
    """The nodes a params-file section applies to, matched as rcl/rclpy match them against each node's fully
    qualified name (`names`: node -> its name as run, e.g. "/robot/fusion_node"; "/node" where not given):
    a section without a leading slash is absolute (`fusion_node` = `/fusion_node`, root namespace only),
    `/*` stands for one name token and `/**` for any number (rclpy's node.cpp: "/*" -> "(/\\w+)", "/**" ->
    "(/\\w+)*", full match). Checked against rclpy 7.1 in /, /ns and /a/ns (test_params.py)."""
    absolute = section if section.startswith("/") else f"/{section}"
    tokens = re.split(r"(/\*\*|/\*)", absolute)
    pattern = "".join({"/**": r"(/\w+)*", "/*": r"(/\w+)"}.get(token, re.escape(token)) for token in tokens)
    return [node for node in nodes if re.fullmatch(pattern, (names or {}).get(node, f"/{node}"))]


def ros_arg_pairs(args: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(flag, following argument) pairs inside `--ros-args ... [--]` blocks, in order: where rcl reads
    `-r RULE`, `-p NAME:=VALUE` and `--params-file FILE` (outside them they are the program's own)."""
    inside = False
    for arg, following in itertools.pairwise([*args, ""]):
        if arg in ("--ros-args", "--"):
            inside = arg == "--ros-args"
        elif inside:
            yield arg, following


def remapped_names(args: Sequence[str], nodes: Sequence[str] = tuple(NODES)) -> dict[str, tuple[str, str]]:
    """Each node's (namespace, name) as the remap rules of `args` give them, the way rcl's remap.c does:
    rules count inside `--ros-args ... [--]` blocks only (`-r RULE`, `--remap RULE`), the first rule that
    matches wins, `__node:=` / `__name:=` apply first and `__ns:=` rules then match the new name; a rule may
    name its node (`fusion_node:__ns:=/robot`). Values are returned as given (rcl checks them)."""
    rules: list[tuple[str, str, str]] = []  # (node or "", key, value), in order
    for flag, rule in ros_arg_pairs(args):
        if flag in ("-r", "--remap") and ":=" in rule:
            target, _, value = rule.partition(":=")
            node, _, key = target.rpartition(":")
            rules.append((node, key, value))

    def first(keys: tuple[str, ...], node: str) -> str | None:
        return next((value for target, key, value in rules if key in keys and target in ("", node)), None)

    result = {}
    for node in nodes:
        name = first(("__node", "__name"), node) or node
        result[node] = (first(("__ns",), name) or "/", name)
    return result


ROS_OWN_TYPES: tuple[Param, ...] = (
    Param("use_sim_time", False, "rclpy: use /clock"),
    Param("start_type_description_service", True, "rclpy: the type description service"),
)  # checked like ours: rclpy refuses a wrong type for them at node creation


@dataclass(frozen=True)
class ParamsSource:
    """One source of parameter overrides, in rcl's order: a params file (`label` its path) or the `-p` values
    of the --ros-args (`label` "--ros-args"), as a params-file mapping."""

    label: str
    data: Any


def _sections(data: dict[Any, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(section, its ros__parameters, None) pairs, rcl's nested form (`robot: {fusion_node: {ros__parameters:
    ...}}` is the section `robot/fusion_node`) flattened; (section, None, problem) where rcl refuses the
    structure, and (section, {}, None) for a mapping that sets nothing."""
    for key, body in data.items():
        name = f"{prefix}{key}"
        if not isinstance(body, dict):
            yield name, None, f"{name}: expected a key ros__parameters holding a mapping"
            continue
        if "ros__parameters" in body:
            params = body["ros__parameters"]
            yield (name, params, None) if isinstance(params, dict) else (name, None, f"{name}.ros__parameters: expected a mapping")
        elif not any(isinstance(value, dict) for value in body.values()):
            yield name, {}, None
        for sub, value in body.items():
            if sub == "ros__parameters":
                continue
            if isinstance(value, dict):
                yield from _sections({sub: value}, f"{name}/")
            else:
                yield name, None, f"{name}.{sub}: a value beside ros__parameters (rcl refuses the file)"


def _section_name_problem(section: str) -> str | None:
    """Why rcl refuses a section name (it then refuses the whole file), or None. Each name token is a ROS
    name (letters, digits, _; not starting with a digit) or a wildcard `*` / `**` (checked against rclpy)."""
    for token in section.removeprefix("/").split("/"):
        if token not in ("*", "**") and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token):
            return f"{section}: not a node name rcl accepts (tokens of letters, digits and _, not starting with a digit, or * and **, between single slashes)"
    return None


def _type_problem(param: Param, value: Any) -> str | None:
    """What rclpy refuses beyond our own checks: a value of another type than the declared one (an integer
    for a float parameter, `slop: 1`) and an empty one (`[]`, `{}`: rcl sets no value, the node has none)."""
    if value == [] or value == {}:
        return f"{param.name}: an empty value (rcl then gives the node no value at all): give one, or leave the key out"
    numbers = value if isinstance(param.default, list) and isinstance(value, list) else [value]
    if (isinstance(param.default, float) or isinstance(param.default, list)) and any(
        isinstance(v, int) and not isinstance(v, bool) for v in numbers
    ):
        example = f"{value}.0" if isinstance(value, int) else "[" + ", ".join(f"{float(v)!r}" for v in numbers) + "]"
        return f"{param.name}: integer {value!r} for a float parameter (rclpy keeps the declared type): write {example}"
    return None


Entries = dict[str, dict[str, tuple[Any, str]]]  # section as written -> parameter -> (value, where it came from)


def _entries(sources: Sequence[ParamsSource], problems: list[str]) -> tuple[Entries, dict[str, str]]:
    """rcl's merged overrides (rcl_params_t): one entry per section name as written (`fusion_node` and
    `/fusion_node` apart; `-p x:=` in `/**`), kept where the name first appeared, a later value for it
    replacing the earlier in place. Also where each section first appeared (`source: section`)."""
    entries: Entries = {}
    first_seen: dict[str, str] = {}
    for source in sources:
        label = f"{source.label}: " if source.label else ""
        if not isinstance(source.data, dict):
            problems.append(f"{label}expected a mapping of node names to {{ros__parameters: {{...}}}}")
            continue
        for section, params, problem in _sections(source.data):
            problem = problem or _section_name_problem(section)
            if problem is not None or params is None:
                problems.append(f"{label}{problem}")
                continue
            entry = entries.setdefault(section, {})
            first_seen.setdefault(section, f"{label}{section}")
            for name, value in flatten(params).items():
                entry[name] = (value, f"{label}{section}")
    return entries, first_seen


def check_sources(
    sources: Sequence[ParamsSource],
    names: Mapping[str, str] | None = None,
    nodes: dict[str, tuple[Param, ...]] = NODES,
    ros_types: bool = True,
    local: Mapping[str, Sequence[ParamsSource]] | None = None,
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of parameter overrides as rcl and rclpy apply them to `nodes` (named as `names`
    gives, see section_nodes): the global `sources` merge into rcl's entries (see _entries), each node takes
    the entries that match it in entry order, the last one winning, then its `local` (node-level cli_args)
    entries likewise; only the value a node ends with is checked (`/**: {slop: 5.0}` then
    `fusion_node: {slop: 0.2}` is fine). Problems name the source and section of the value; warnings are
    sections that reach none of `nodes` and keys no node declares. `ros_types`: read as rcl reads files
    (schema.read_yaml(ros_params=True)), so rclpy's type rules apply (see _type_problem)."""
    problems: list[str] = []
    warnings: list[str] = []
    known = {p.name for params in NODES.values() for p in params}
    global_entries, first_seen = _entries(sources, problems)
    local_entries = {node: _entries(local.get(node, ()), problems)[0] for node in nodes} if local else {}
    where = ", ".join(dict.fromkeys((names or {}).get(node, f"/{node}") for node in NODES))
    for section, entry in [*global_entries.items(), *(item for entries in local_entries.values() for item in entries.items())]:
        meant_for_another = section.rsplit("/", 1)[-1] in set(NODES) - set(nodes)  # e.g. kitti.yaml's other node's
        if section in global_entries and not section_nodes(section, NODES, names) and not meant_for_another:
            last = section.rsplit("/", 1)[-1]
            qualified = [(names or {}).get(node, f"/{node}") for node in NODES]
            ours = (
                (names or {}).get(last, f"/{last}") if last in NODES else next((q for q in qualified if q.rsplit("/", 1)[1] == last), None)
            )
            fix = f"; for that node write {ours} or /**/{ours.rsplit('/', 1)[1]}" if ours else ""  # a node of ours, elsewhere
            warnings.append(f"{first_seen[section]}: matches no semseg_ros node ({where}){fix}; ignored here")
            continue
        for name, (_, origin) in entry.items():
            if not is_ros_own(name) and name not in known:  # a typo: rcl passes it on, no node declares it
                close = difflib.get_close_matches(name, sorted(known), n=1)
                warnings.append(f"{origin}.{name}: no node declares it" + (f" (did you mean {close[0]}?)" if close else ""))
    for node in nodes:
        reaching: dict[str, tuple[Any, str]] = {}
        for entries in (global_entries, local_entries.get(node, {})):
            for section, entry in entries.items():
                if node in section_nodes(section, {node: nodes[node]}, names):
                    reaching |= entry
        declared = {p.name: p for p in (*nodes[node], *ROS_OWN_TYPES)}
        for name, (value, origin) in reaching.items():
            if name not in declared:
                continue
            why = (_type_problem(declared[name], value) if ros_types else None) or declared[name].check(value)
            if why is not None:
                why = why if len(why) <= 240 else f"{why[:240]}..."
                if f"{origin}.{why}" not in problems:
                    problems.append(f"{origin}.{why}")
    return problems, list(dict.fromkeys(warnings))
