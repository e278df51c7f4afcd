"""The KITTI stack: segmentation_node + fusion_node, optionally a bag and RViz.

    ros2 launch semseg_ros kitti.launch.py bag:=/data/kitti_0005_bag rviz:=true use_sim_time:=true
    ros2 launch semseg_ros kitti.launch.py model:=/models/fpn.engine params_file:=/my/kitti.yaml

`params_file` is applied over config/kitti.yaml: it needs only the keys it changes. `model` and
`use_sim_time` override the params file only when given. Everything the arguments ask
for (rviz2, ros2 bag) is checked before anything starts. Fast DDS reads config/fastdds.xml (large
frames over shared memory) unless FASTRTPS_DEFAULT_PROFILES_FILE is already set.
Pip-only equivalent (same nodes, same YAML, same topic wiring): semseg launch kitti --bag BAG.
"""

import os
from typing import Any

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from semseg_ros.ros.launcher import launch_flag, launch_overrides, missing_for_launch, params_files
from semseg_ros.ros.node_process import PROFILE_VARIABLES
from semseg_ros.topics import KITTI_REMAPS

ARGUMENTS = ("bag", "model", "params_file", "rviz", "use_sim_time")


def launch_setup(context: Any, share: str) -> list[Any]:
    """The actions, from the argument values (launch's OpaqueFunction calls this once they are known)."""
    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    rviz = bool(launch_flag("rviz", args["rviz"]))
    missing = missing_for_launch(rviz, args["bag"])
    if missing:
        raise RuntimeError("; ".join(missing))  # before any process starts
    overrides = launch_overrides(args["model"], args["use_sim_time"])
    files = params_files(args["params_file"], os.path.join(share, "config", "kitti.yaml"))
    actions: list[Any] = []
    if not any(os.environ.get(name) for name in PROFILE_VARIABLES):
        actions.append(SetEnvironmentVariable(PROFILE_VARIABLES[0], os.path.join(share, "config", "fastdds.xml")))
    for name in ("segmentation_node", "fusion_node"):
        actions.append(
            Node(
                package="semseg_ros",
                executable=name,
                name=name,
                parameters=[*files, overrides[name]],
                remappings=list(KITTI_REMAPS[name].items()),
                output="screen",
            )
        )
    if args["bag"]:
        actions.append(ExecuteProcess(cmd=["ros2", "bag", "play", args["bag"], "--clock"], output="screen"))
    if rviz:
        sim = overrides["fusion_node"].get("use_sim_time")
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", os.path.join(share, "config", "kitti.rviz")],
                parameters=[] if sim is None else [{"use_sim_time": sim}],
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("semseg_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", default_value="", description="ROS 2 bag to play (from semseg kitti2bag); empty: live topics"),
            DeclareLaunchArgument("model", default_value="", description="model file (.pt, .onnx, .engine); empty: the params file's"),
            DeclareLaunchArgument(
                "params_file", default_value="", description="node parameters over config/kitti.yaml's (only the keys it sets change)"
            ),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/kitti.rviz"),
            DeclareLaunchArgument(
                "use_sim_time", default_value="", description="true: follow /clock from the bag; empty: the params file's"
            ),
            OpaqueFunction(function=launch_setup, args=[share]),
        ]
    )
