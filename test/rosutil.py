"""Helpers for tests with real rclpy: an isolated DDS domain, a background executor, waiting."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def isolate_ros_domain() -> dict[str, str]:
    """A domain id of this test process's own and localhost-only discovery (set before rclpy.init)."""
    values = {
        "ROS_DOMAIN_ID": str(10 + os.getpid() % 200),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    }
    os.environ.update(values)
    return values


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


@contextmanager
def spinning(*nodes: Any) -> Iterator[Any]:
    """Spin `nodes` in a MultiThreadedExecutor on a background thread (stopped in the package's safe order)."""
    from rclpy.executors import MultiThreadedExecutor

    from semseg_ros.ros.node_process import spinning_in_background

    executor = MultiThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    with spinning_in_background(executor):
        yield executor


def make_image_msg(
    rgb: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False, frame_id: str = "camera", stamp: tuple[int, int] = (1, 2)
) -> Any:
    """Encode an RGB array as a sensor_msgs/Image by hand (independent of the package's decoder)."""
    import cv2
    from sensor_msgs.msg import Image

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "rgba8":
        pixels = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    elif encoding == "bgra8":
        pixels = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
    elif encoding == "mono8":
        pixels = gray
    elif encoding == "mono16":
        wide = gray.astype(np.uint16) * 257
        pixels = wide.astype(">u2" if big_endian else "<u2").view(np.uint8).reshape(gray.shape[0], -1)
    elif encoding in ("yuv422_yuy2", "yuv422"):
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
        y, u, v = yuv[..., 0], yuv[..., 1], yuv[..., 2]
        chroma_u = u.reshape(u.shape[0], -1, 2).mean(axis=2).astype(np.uint8)
        chroma_v = v.reshape(v.shape[0], -1, 2).mean(axis=2).astype(np.uint8)
        pairs = np.empty((y.shape[0], y.shape[1] // 2, 4), np.uint8)
        if encoding == "yuv422_yuy2":  # Y0 U Y1 V
            pairs[..., 0], pairs[..., 1], pairs[..., 2], pairs[..., 3] = y[:, 0::2], chroma_u, y[:, 1::2], chroma_v
        else:  # UYVY: U Y0 V Y1
            pairs[..., 0], pairs[..., 1], pairs[..., 2], pairs[..., 3] = chroma_u, y[:, 0::2], chroma_v, y[:, 1::2]
        pixels = pairs.reshape(y.shape[0], -1)
    else:
        raise ValueError(encoding)
    rows = np.ascontiguousarray(pixels).reshape(rgb.shape[0], -1)
    if pad:
        rows = np.hstack([rows, np.full((rows.shape[0], pad), 77, np.uint8)])
    msg = Image()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


def image_from_msg(msg: Any) -> np.ndarray:
    """Decode an output image by hand (mono8 or rgb8, tight rows)."""
    channels = 1 if msg.encoding == "mono8" else 3
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    return data.reshape(msg.height, msg.width, channels).squeeze()
