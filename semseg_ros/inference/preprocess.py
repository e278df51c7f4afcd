"""Network input on the CPU: resize and normalise camera images, the one path every CPU runtime and INT8 calibration share."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray


def valid_region(source: tuple[int, ...], size: tuple[int, int], keep_aspect: bool) -> tuple[int, int]:
    """The (h, w) the image fills in the network input: all of it, or its letterboxed part."""
    if not keep_aspect:
        return size
    scale = min(size[0] / source[0], size[1] / source[1])
    return max(1, round(source[0] * scale)), max(1, round(source[1] * scale))


def preprocess_cpu(
    images: list[NDArray[np.uint8]],
    size: tuple[int, int],
    mean: NDArray[np.float32],
    std: NDArray[np.float32],
    keep_aspect: bool = False,
) -> tuple[NDArray[np.float32], tuple[int, int]]:
    """(B, 3, H, W) float32 network input from same-size HxWx3 uint8 RGB images, and the valid (h, w) region.

    Bilinear float32 resize with OpenCV (half-pixel centres: torch's align_corners=False, within 0.02
    grey levels), then (x - mean) / std with mean and std in 0-255 units; letterboxing pads with zeros
    at the bottom and right. About 1.5 ms for 1242x375 to 256x832 on one core, against 3.5-15 ms
    for torch's interpolate.
    """
    height, width = size
    valid = valid_region(images[0].shape[:2], size, keep_aspect)
    batch = np.zeros((len(images), 3, height, width), np.float32)
    scale = (1.0 / np.asarray(std, np.float32)).reshape(3, 1, 1)
    offset = (np.asarray(mean, np.float32) * scale.ravel()).reshape(3, 1, 1)
    for out, image in zip(batch, images, strict=True):
        pixels = image.astype(np.float32)
        if image.shape[:2] != valid:
            pixels = cv2.resize(pixels, (valid[1], valid[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32, copy=False)
        planar = pixels.transpose(2, 0, 1)
        np.multiply(planar, scale, out=out[:, : valid[0], : valid[1]])
        out[:, : valid[0], : valid[1]] -= offset
    return batch, valid
