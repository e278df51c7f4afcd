"""`semseg launch kitti`: segmentation_node, fusion_node and optionally a bag player in one process,
wired like launch/kitti.launch.py (the topic table in semseg_ros.topics) with the same YAML."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from semseg_ros.errors import SemsegError
from semseg_ros.paths import share_dirs
from semseg_ros.ros.node_process import run_nodes
from semseg_ros.topics import TOPICS, remap_arguments

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def launch_flag(name: str, value: str) -> bool | None:
    """A launch argument as a bool: true/false (also 1/0, yes/no, on/off; any case); '' = not given (None)."""
    text = value.strip().lower()
    if not text:
        return None
    if text not in TRUE + FALSE:
        raise SemsegError(f"{name}:={value}: expected true or false")
    return text in TRUE


def launch_overrides(model: str, use_sim_time: str) -> dict[str, dict[str, Any]]:
    """Per node, the parameters that launch arguments set: only arguments actually given (non-empty), so
    that the params file's `model` and `use_sim_time` hold unless the command line says otherwise."""
    common: dict[str, Any] = {}
    sim = launch_flag("use_sim_time", use_sim_time)
    if sim is not None:
        common["use_sim_time"] = sim
    return {"segmentation_node": {**common, **({"model": model} if model.strip() else {})}, "fusion_node": dict(common)}


def shipped_params() -> Path:
    """config/kitti.yaml of the installed package (never a kitti.yaml of the working directory)."""
    for share in share_dirs():
        if (share / "config" / "kitti.yaml").is_file():
            return share / "config" / "kitti.yaml"
    raise SemsegError(f"config/kitti.yaml not found in {', '.join(map(str, share_dirs())) or 'any share folder'}: reinstall semseg_ros")


def params_files(params_file: str, shipped: str) -> list[str]:
    """The parameter files of the KITTI launch, in the order rcl applies them (later files win): the shipped
    config/kitti.yaml, then the user's `params_file` (unless it is that same file). A file that sets only
    `model` and `use_sim_time` thus keeps the KITTI wiring's calibration_source, extrinsic and network size;
    replacing kitti.yaml whole left the fusion node on the schema's calibration_source (kitti_raw), dead."""
    given = params_file.strip()
    if not given or (os.path.exists(given) and os.path.exists(shipped) and os.path.samefile(given, shipped)):
        return [shipped]
    return [shipped, given]


def missing_for_launch(rviz: bool, bag: str) -> list[str]:
    """What `ros2 launch semseg_ros kitti.launch.py` needs but this install lacks, each with what to install;
    checked before anything starts, so a missing rviz2 never leaves the nodes running orphaned."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    def installed(package: str) -> bool:
        try:
            get_package_prefix(package)
        except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
            return False
        return True

    missing = []
    if rviz and not installed("rviz2"):
        missing.append("rviz:=true needs rviz2 (sudo apt install ros-jazzy-rviz2), or leave rviz:=false")
    if bag and not (shutil.which("ros2") and installed("ros2bag") and installed("rosbag2_storage_mcap")):
        missing.append(
            "bag:=... needs ros2 bag with mcap storage (sudo apt install ros-jazzy-rosbag2 ros-jazzy-rosbag2-storage-mcap), "
            "or play it with `ros2 run semseg_ros semseg play BAG --clock` next to the launch"
        )
    return missing


def kitti_local_arguments(model: str | None = None, calib_dir: Path | None = None) -> dict[str, list[str]]:
    """Each KITTI node's own cli_args: its topic remaps, and `model` / `calib_dir` as parameters (node-level
    arguments win over every global one, params files included)."""
    segmentation_args = remap_arguments("segmentation_node") + ([] if model is None else ["-p", f"model:={model}"])
    fusion_args = remap_arguments("fusion_node")
    if calib_dir is not None:
        fusion_args += ["-p", "calibration_source:=kitti_raw", "-p", f"kitti_calib_dir:={calib_dir}"]
    return {"segmentation_node": segmentation_args, "fusion_node": fusion_args}


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

    local = kitti_local_arguments(model, calib_dir)
    factories: list[Any] = [
        lambda: SegmentationNode(cli_args=local["segmentation_node"], **node_kwargs),
        lambda: FusionNode(cli_args=local["fusion_node"], **node_kwargs),
    ]
    if bag is not None:
        factories.append(lambda: BagPlayer(bag, rate=rate, loop=loop, **node_kwargs))
    return factories


def launch_kitti(
    rclpy_args: list[str], bag: Path | None, model: str | None, rate: float, loop: bool, calib_dir: Path | None, prog: str | None = None
) -> int:
    """Run the KITTI setup until Ctrl-C (or the bag's end); start-up errors are one line `PROG: error: ...`,
    and so is a playback fault (SemsegError, raised once the nodes have stopped).
    `rclpy_args`: ros_arguments(params, extra, first=[shipped_params()], local=kitti_local_arguments(...)),
    so that the shipped kitti.yaml comes first, as in kitti.launch.py, and everything is checked first."""
    running: list[Any] = []
    players: list[Any] = []

    def started(nodes: list[Any]) -> None:
        running.extend(nodes)
        if bag is not None:
            players.append(nodes[-1])
            nodes[-1].start()

    finished_at: list[float] = []

    def done() -> bool:
        """The bag has ended and the last frame has left the segmentation node (at most 3 s later)."""
        if not players or not players[0].finished.is_set():
            return False
        finished_at[:] = finished_at or [time.monotonic()]
        waited = time.monotonic() - finished_at[0]
        return (waited > 1.0 and not running[0].has_pending_frame) or waited > 3.0

    def stopped() -> None:
        if running:
            print(run_summary(running[0], running[1], players[0] if players else None), flush=True)

    code = run_nodes(kitti_nodes(bag, model, rate, loop, calib_dir), rclpy_args, started=started, done=done, prog=prog, stopped=stopped)
    if players:
        players[0].raise_errors()  # a corrupt bag is a failed run (before: exit 0 after an [ERROR] log line)
    return code


def run_summary(segmentation: Any, fusion: Any, player: Any | None) -> str:
    """One line of what a run did: frames segmented and dropped, clouds fused and left without a mask."""
    seg = segmentation.stats
    played = f"played {player.published} messages; " if player is not None else ""
    waiting = len(fusion.sync.queues["points"])  # never paired: the run ended before a mask within slop came
    unpaired = fusion.sync.stats.unmatched["points"] + waiting
    line = (
        f"{played}segmentation_node: {seg.processed} of {seg.received} frames segmented ({seg.dropped} dropped for newer ones); "
        f"fusion_node: {fusion.stats.fused} clouds fused, {unpaired} without a mask within slop {fusion.config.slop:g} s"
    )
    if seg.received == 0:
        line += f"; no camera frame reached segmentation_node (does the bag have {TOPICS['image']}?)"
    return line
