"""The ROS parameter schema of every node: the one source of truth for names, types, defaults and ranges.

The nodes declare exactly these parameters (with descriptors built from them), config/kitti.yaml
is checked against them, and the README's parameter tables are generated from them. Plain Python:
no rclpy import, so the schema can be read and validated anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semseg_ros.errors import SemsegError

RELIABILITY = ("reliable", "best_effort")
DURABILITY = ("volatile", "transient_local")


@dataclass(frozen=True)
class Param:
    name: str
    default: bool | int | float | str | list[float]
    description: str
    live: bool = False  # may change at run time (`ros2 param set`); otherwise read-only
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if isinstance(self.default, list):
            if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                return f"{self.name}: expected a list of numbers, got {value!r}"
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
        return None


SEGMENTATION_NODE = "segmentation_node"
SEGMENTATION_PARAMS: tuple[Param, ...] = (
    Param(
        "model",
        "synthetic_unet_mobilenet.pt",
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
        "best_effort",
        "QoS reliability of the image subscription (best_effort also hears reliable publishers)",
        choices=RELIABILITY,
    ),
    Param("input_depth", 1, "QoS depth of the image subscription", range=(1, 100)),
    Param("output_reliability", "reliable", "QoS reliability of the outputs", choices=RELIABILITY),
    Param("output_depth", 2, "QoS depth of the outputs", range=(1, 100)),
    Param("publish_mask", True, "publish `mask` (mono8 class ids)", live=True),
    Param("publish_color_mask", True, "publish `color_mask` (rgb8 palette colours)", live=True),
    Param("publish_overlay", True, "publish `overlay` (rgb8 blend of image and colours)", live=True),
    Param("publish_confidence", True, "publish `confidence` (mono8, max softmax * 255)", live=True),
    Param("overlay_alpha", 0.5, "weight of the class colours in `overlay`", live=True, range=(0.0, 1.0)),
    Param("palette", "", "JSON list of [r, g, b] per class overriding the model's colours ('' = the model's)", live=True),
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
        choices=("kitti_raw", "kitti_object", "camera_info", "camera_info_tf"),
    ),
    Param("kitti_calib_dir", "", "KITTI raw date folder holding calib_cam_to_cam.txt and calib_velo_to_cam.txt"),
    Param("kitti_calib_file", "", "KITTI object/odometry calib file (P0-P3, R0_rect, Tr_velo_to_cam)"),
    Param("camera_index", 2, "KITTI camera whose images the masks come from", range=(0, 3)),
    Param(
        "lidar_to_camera", IDENTITY_4X4, "row-major 4x4 transform from the lidar frame to the camera's optical frame (camera_info source)"
    ),
    Param("slop", 0.05, "largest stamp difference (s) between a cloud and the mask fused with it", live=True, range=(0.0, 1.0)),
    Param("queue_size", 10, "messages kept per stream while waiting for a partner", range=(1, 100)),
    Param("use_confidence", False, "subscribe `confidence` and add a per-point confidence field"),
    Param("min_depth", 0.5, "points closer to the camera than this (m) stay unlabelled", live=True, range=(0.0, 100.0)),
    Param("max_depth", 0.0, "points farther than this (m) stay unlabelled (0 = no limit)", live=True, range=(0.0, 1000.0)),
    Param("occlusion", True, "leave points hidden behind nearer surfaces unlabelled", live=True),
    Param("occlusion_window", 2, "half-size (px) of the nearest-depth window", live=True, range=(0, 20)),
    Param("occlusion_tolerance", 0.3, "depth margin (m) before a point counts as hidden ...", live=True, range=(0.0, 50.0)),
    Param("occlusion_tolerance_ratio", 0.1, "... plus this fraction of the depth", live=True, range=(0.0, 10.0)),
    Param("drop_unlabelled", False, "publish only points that got a class", live=True),
    Param(
        "cluster_classes", "car,truck,bus,person,rider,bicycle,motorcycle", "comma-separated class names to cluster ('' = none)", live=True
    ),
    Param("cluster_radius", 0.6, "default linking distance (m) of a cluster", live=True, range=(0.01, 10.0)),
    Param("cluster_min_points", 10, "default smallest cluster", live=True, range=(1, 100000)),
    Param(
        "cluster_rules",
        '{"person": {"radius": 0.4, "min_points": 5}, "rider": {"radius": 0.4, "min_points": 5}, "bicycle": {"radius": 0.4, "min_points": 5}}',
        "JSON per-class overrides: {class: {radius, min_points}}",
        live=True,
    ),
    Param("voxel_size", 0.0, "voxel downsampling (m) before linking (0 = off)", live=True, range=(0.0, 5.0)),
    Param("publish_markers", True, "publish `clusters` (MarkerArray: boxes and class names)", live=True),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0)),
)

NODES: dict[str, tuple[Param, ...]] = {SEGMENTATION_NODE: SEGMENTATION_PARAMS, FUSION_NODE: FUSION_PARAMS}


def validate_params_file(data: dict[str, Any], nodes: dict[str, tuple[Param, ...]] = NODES) -> list[str]:
    """Problems in a ROS params-file mapping (`node: {ros__parameters: {...}}`), checked against the schema."""
    problems = []
    for node, section in data.items():
        if node not in nodes:
            problems.append(f"{node}: no such node (known: {', '.join(nodes)})")
            continue
        if not isinstance(section, dict) or set(section) != {"ros__parameters"} or not isinstance(section["ros__parameters"], dict):
            problems.append(f"{node}: expected exactly one key, ros__parameters, holding a mapping")
            continue
        schema = {p.name: p for p in nodes[node]}
        for name, value in section["ros__parameters"].items():
            if name not in schema:
                problems.append(f"{node}.{name}: unknown parameter")
            elif (why := schema[name].check(value)) is not None:
                problems.append(f"{node}.{why}")
    return problems


def check_params_file(data: dict[str, Any], source: str) -> None:
    problems = validate_params_file(data)
    if problems:
        raise SemsegError(f"{source}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
