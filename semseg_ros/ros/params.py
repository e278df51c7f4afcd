"""Declare a node's parameters from the schema in semseg_ros.node_params, with descriptors."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from semseg_ros.errors import SemsegError
from semseg_ros.node_params import NODES, NodeConfig, Param, is_ros_own

C = TypeVar("C", bound=NodeConfig)


def descriptor(param: Param) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=param.description, read_only=not param.live)
    if param.range is not None:
        if isinstance(param.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(param.range[0]), to_value=float(param.range[1]), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(from_value=int(param.range[0]), to_value=int(param.range[1]), step=1)]
    if param.choices is not None:
        desc.additional_constraints = "one of: " + ", ".join(param.choices)
    return desc


def declare(node: Node, config: type[C]) -> C:
    """Declare every parameter of `config` (a node_params.NodeConfig); values from params files are checked."""
    values = {}
    for param in config.PARAMS:
        try:
            value = node.declare_parameter(param.name, param.default, descriptor(param)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            raise SemsegError(f"parameter {param.name}: {' '.join(str(exc).split())}") from None
        problem = param.check(value)
        if problem is not None:
            raise SemsegError(f"parameter {problem}")
        values[param.name] = value
    warn_undeclared(node)
    typed = config.from_values(values)
    problem = typed.problem()
    if problem is not None:
        raise SemsegError(f"parameter {problem}")
    return typed


def warn_undeclared(node: Node) -> None:
    """Warn about parameters given to this node (params files, wildcards, -p) that no semseg_ros node
    declares: rcl ignores them silently, so a typo such as `overlay_alpah` would go unnoticed."""
    known = sorted({p.name for params in NODES.values() for p in params})
    for name in sorted(getattr(node, "_parameter_overrides", {})):
        if name not in known and not is_ros_own(name):
            hint = difflib.get_close_matches(name, known, n=1)
            node.get_logger().warning(
                f"parameter {name} is given but no semseg_ros node declares it; ignored" + (f" (did you mean {hint[0]}?)" if hint else "")
            )


def apply_update(
    config: C, updates: list[Parameter], extra: Callable[[Parameter], str | None] | None = None
) -> tuple[SetParametersResult, C]:
    """Validate live parameter changes against the schema (and `extra(update)`: why not, or None);
    returns the result and the config with the changes (`config` itself when refused). Read-only
    parameters are refused by rclpy itself."""
    schema = {p.name: p for p in config.PARAMS}
    for update in updates:
        param = schema.get(update.name)
        if param is None:
            continue
        problem = param.check(update.value)
        if problem is None and extra is not None:
            problem = extra(update)
        if problem is not None:
            return SetParametersResult(successful=False, reason=problem), config
    updated = config.updated({u.name: u.value for u in updates})
    problem = updated.problem()
    if problem is not None:
        return SetParametersResult(successful=False, reason=problem), config
    return SetParametersResult(successful=True), updated


def qos(reliability: str, depth: int, durability: str = "volatile") -> QoSProfile:
    """Keep-last QoS from parameter values (`reliable`/`best_effort`, `volatile`/`transient_local`)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if durability == "transient_local" else DurabilityPolicy.VOLATILE,
    )
