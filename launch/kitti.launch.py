"""The KITTI stack: segmentation_node + fusion_node, optionally a bag and RViz.

    ros2 launch semseg_ros kitti.launch.py bag:=/data/kitti_0005_bag rviz:=true use_sim_time:=true
    ros2 launch semseg_ros kitti.launch.py model:=/models/fpn.engine params_file:=/my/kitti.yaml

Pip-only equivalent (same nodes, same YAML, same topic wiring): semseg launch kitti --bag BAG.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition, LaunchConfigurationNotEquals
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from semseg_ros.topics import KITTI_REMAPS


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("semseg_ros")
    bag = LaunchConfiguration("bag")
    model = LaunchConfiguration("model")
    params_file = LaunchConfiguration("params_file")
    rviz = LaunchConfiguration("rviz")
    use_sim_time = LaunchConfiguration("use_sim_time")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", default_value="", description="ROS 2 bag to play (from semseg kitti2bag); empty: live topics"),
            DeclareLaunchArgument("model", default_value="camvid_unet_mobilenet.pt", description="model file (.pt, .onnx, .engine)"),
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "kitti.yaml"), description="node parameters"),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/kitti.rviz"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock from the bag"),
            Node(
                package="semseg_ros",
                executable="segmentation_node",
                name="segmentation_node",
                parameters=[params_file, {"model": model, "use_sim_time": use_sim_time}],
                remappings=list(KITTI_REMAPS["segmentation_node"].items()),
                output="screen",
            ),
            Node(
                package="semseg_ros",
                executable="fusion_node",
                name="fusion_node",
                parameters=[params_file, {"use_sim_time": use_sim_time}],
                remappings=list(KITTI_REMAPS["fusion_node"].items()),
                output="screen",
            ),
            ExecuteProcess(cmd=["ros2", "bag", "play", bag, "--clock"], condition=LaunchConfigurationNotEquals("bag", ""), output="screen"),
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", os.path.join(share, "config", "kitti.rviz")],
                parameters=[{"use_sim_time": use_sim_time}],
                condition=IfCondition(rviz),
            ),
        ]
    )
