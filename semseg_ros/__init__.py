"""semseg_ros: semantic segmentation for robots, from training to a ROS 2 node and lidar fusion."""

__version__ = "0.1.0"
