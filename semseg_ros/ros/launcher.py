"""`semseg launch kitti`: segmentation_node, fusion_node and optionally a bag player in one process,
wired like launch/kitti.launch.py (the topic table in semseg_ros.topics) with the same YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semseg_ros.ros.runner import run_nodes
from semseg_ros.topics import remap_arguments


def kitti_nodes(
    bag: Path | None = None,
    model: str | None = None,
    rate: float = 1.0,
    loop: bool = False,
    calib_dir: Path | None = None,
    **node_kwargs: Any,
) -> list[Any]:
    """Factories of the KITTI setup's nodes (call them after rclpy.init)."""
    from semseg_ros.ros.fusion_node import FusionNode
    from semseg_ros.ros.player import BagPlayer
    from semseg_ros.ros.segmentation_node import SegmentationNode

    segmentation_args = remap_arguments("segmentation_node") + ([] if model is None else ["-p", f"model:={model}"])
    fusion_args = remap_arguments("fusion_node")
    if calib_dir is not None:
        fusion_args += ["-p", "calibration_source:=kitti_raw", "-p", f"kitti_calib_dir:={calib_dir}"]
    factories: list[Any] = [
        lambda: SegmentationNode(cli_args=segmentation_args, **node_kwargs),
        lambda: FusionNode(cli_args=fusion_args, **node_kwargs),
    ]
    if bag is not None:
        factories.append(lambda: BagPlayer(bag, rate=rate, loop=loop, **node_kwargs))
    return factories


def launch_kitti(rclpy_args: list[str], bag: Path | None, model: str | None, rate: float, loop: bool, calib_dir: Path | None) -> int:
    players: list[Any] = []

    def started(nodes: list[Any]) -> None:
        if bag is not None:
            players.append(nodes[-1])
            nodes[-1].start()

    return run_nodes(
        kitti_nodes(bag, model, rate, loop, calib_dir),
        rclpy_args,
        started=started,
        done=lambda: bool(players) and players[0].finished.is_set(),
    )
