"""The rclpy layer: message conversions and thin nodes over the ROS-free core."""
