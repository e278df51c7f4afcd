"""sensor_msgs <-> numpy without cv_bridge: images in any common encoding, padded rows, either endianness.

Functions read message fields by attribute, so they work with rclpy messages and with
deserialized bag messages alike; they raise `ImageError` with a clear reason for bad input.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from semseg_ros.data.images import MAX_IMAGE_PIXELS, ImageTooLarge, check_pixels, header_size
from semseg_ros.errors import SemsegError

# encoding -> (channels, bytes per channel)
ENCODINGS = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1), "8UC1": (1, 1), "8UC3": (3, 1),
    "mono16": (1, 2), "16UC1": (1, 2), "yuv422": (2, 1), "uyvy": (2, 1), "yuv422_yuy2": (2, 1), "yuyv": (2, 1),
}  # fmt: skip


class ImageError(SemsegError):
    """An image message that cannot be decoded."""


def _pixel_rows(msg: Any, max_pixels: int) -> tuple[NDArray[np.uint8], int, int]:
    """(height x row-bytes uint8 view of msg.data without the row padding, channels, bytes per channel).

    Raises ImageError for bad fields or data, ImageTooLarge beyond `max_pixels` (width * height).
    """
    height, width, step, encoding = int(msg.height), int(msg.width), int(msg.step), str(msg.encoding)
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    if height == 0 or width == 0:
        raise ImageError(f"empty image ({width}x{height})")
    check_pixels(width, height, max_pixels)
    channels, depth = ENCODINGS[encoding]
    row_bytes = width * channels * depth
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        raise ImageError(f"{encoding} needs an even width, got {width}")
    if step < row_bytes:
        raise ImageError(f"step {step} is too small for {width} px of {encoding} (needs at least {row_bytes})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    needed = step * (height - 1) + row_bytes
    if data.size < needed:
        raise ImageError(f"data holds {data.size} bytes, a {width}x{height} {encoding} image with step {step} needs {needed}")
    return np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1)), channels, depth


def image_to_rgb(msg: Any, max_pixels: int = MAX_IMAGE_PIXELS) -> NDArray[np.uint8]:
    """sensor_msgs/Image to an HxWx3 uint8 RGB array (a copy; row padding and endianness honoured).

    Raises ImageError for bad fields or data, ImageTooLarge beyond `max_pixels` (width * height).
    """
    rows, channels, depth = _pixel_rows(msg, max_pixels)
    height, width, encoding = int(msg.height), int(msg.width), str(msg.encoding)
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        gray16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        gray = (gray16 >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    pixels = rows.reshape(height, width, channels)
    if encoding in ("rgb8",):
        return np.ascontiguousarray(pixels)
    if encoding in ("bgr8", "8UC3"):
        return np.ascontiguousarray(pixels[..., ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(pixels[..., :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(pixels[..., 2::-1])
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    code = cv2.COLOR_YUV2RGB_UYVY if encoding in ("yuv422", "uyvy") else cv2.COLOR_YUV2RGB_YUYV
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(pixels), code), dtype=np.uint8)


def compressed_to_rgb(msg: Any, max_pixels: int = MAX_IMAGE_PIXELS) -> NDArray[np.uint8]:
    """sensor_msgs/CompressedImage (JPEG, PNG, ...) to HxWx3 uint8 RGB.

    The size is read from the header before decoding: a 62 kB PNG can announce 8000x8000 pixels
    (5.5 GB of decoder memory). Raises ImageTooLarge beyond `max_pixels`, ImageError for data that
    is empty, of no known format or corrupt.
    """
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageError("empty compressed image")
    what = f"compressed image (format '{msg.format}', {data.size} bytes)"
    try:
        header_size(data.tobytes(), max_pixels, what)
    except ImageTooLarge:
        raise
    except SemsegError as exc:
        raise ImageError(f"corrupt or unsupported {what}: {str(exc).removeprefix(what + ': ')}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"corrupt or unsupported compressed image (format '{msg.format}', {data.size} bytes)")
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def fill_image(msg: Any, header: Any, array: NDArray[np.uint8], encoding: str) -> Any:
    """Fill a sensor_msgs/Image from an HxW (mono8) or HxWx3 (rgb8) uint8 array; returns the message."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def mask_from_image(msg: Any, max_pixels: int = MAX_IMAGE_PIXELS) -> NDArray[np.uint8]:
    """A mono8 (or 8UC1) class-id mask as a read-only HxW uint8 view of msg.data (no copy; row padding skipped).

    Raises ImageError for another encoding or bad fields, ImageTooLarge beyond `max_pixels`.
    """
    if msg.encoding not in ("mono8", "8UC1"):
        raise ImageError(f"mask must be mono8 class ids, got encoding '{msg.encoding}'")
    mask = _pixel_rows(msg, max_pixels)[0]
    mask.flags.writeable = False  # a view of the message: nothing may write through it
    return mask
