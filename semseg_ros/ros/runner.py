"""Start nodes in one process: rclpy init, a multi-threaded executor, clean shutdown, fatal errors as one line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from semseg_ros.errors import SemsegError


def run_nodes(
    factories: Sequence[Callable[[], Any]],
    args: list[str] | None = None,
    started: Callable[[list[Any]], None] | None = None,
    done: Callable[[], bool] | None = None,
) -> int:
    """Create the nodes (fatal start-up errors: one line, exit 2) and spin them until shutdown,
    or until `done()` turns true (checked twice a second). `started(nodes)` runs once all exist."""
    rclpy.init(args=args)
    nodes = []
    try:
        for factory in factories:
            nodes.append(factory())
    except SemsegError as exc:
        print(f"semseg: fatal: {exc}", file=sys.stderr)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    if started is not None:
        started(nodes)
    try:
        while rclpy.ok() and not (done is not None and done()):
            executor.spin_once(timeout_sec=0.5)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
