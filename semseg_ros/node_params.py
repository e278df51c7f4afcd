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
    default: bool | int | float | str
    description: str
    live: bool = False  # may change at run time (`ros2 param set`); otherwise read-only
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
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
    Param("backend", "auto", "inference backend", choices=("auto", "torch", "onnxruntime", "tensorrt")),
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

NODES: dict[str, tuple[Param, ...]] = {SEGMENTATION_NODE: SEGMENTATION_PARAMS}


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
