"""The console scripts of the nodes: Ctrl-C is remembered (semseg_ros.stop_signals) before torch, rclpy
and the node modules are imported, so a signal during those seconds is a quiet stop, not a traceback."""

from __future__ import annotations

from semseg_ros import stop_signals


def segmentation_node() -> int:
    """`segmentation_node` (`ros2 run semseg_ros segmentation_node --ros-args ...`)."""
    with stop_signals.remembering(at_exit=True):
        from semseg_ros.ros.segmentation_node import main

        return main()


def fusion_node() -> int:
    """`fusion_node` (`ros2 run semseg_ros fusion_node --ros-args ...`)."""
    with stop_signals.remembering(at_exit=True):
        from semseg_ros.ros.fusion_node import main

        return main()
