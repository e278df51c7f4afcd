"""Pictures of predictions: colour overlays, image | GT | prediction | error side-by-sides, caption strips."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from semseg_ros.labels import IGNORE

CAPTION_HEIGHT = 24


def overlay(image: NDArray[np.uint8], labels: NDArray[np.uint8], palette: NDArray[np.uint8], alpha: float = 0.5) -> NDArray[np.uint8]:
    """Alpha-blend the class colours over the RGB image (pixels labelled IGNORE stay as they are)."""
    colours = palette[labels].astype(np.float32)
    blended = image.astype(np.float32) * (1 - alpha) + colours * alpha
    blended[labels == IGNORE] = image[labels == IGNORE]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def error_map(gt: NDArray[np.uint8], prediction: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Black where GT is ignored, dark grey where right, red where wrong."""
    picture = np.full((*gt.shape, 3), 64, np.uint8)
    picture[(gt != prediction) & (gt != IGNORE)] = (255, 0, 0)
    picture[gt == IGNORE] = 0
    return picture


def side_by_side(
    image: NDArray[np.uint8], gt: NDArray[np.uint8], prediction: NDArray[np.uint8], palette: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    """A 2x2 grid, each panel captioned: image, GT colours / prediction colours, error map.
    HxW inputs give a (2 * (H + CAPTION_HEIGHT))x(2 * W)x3 uint8 picture."""
    top = np.concatenate([captioned(image, "image"), captioned(palette[gt], "ground truth")], axis=1)
    errors = captioned(error_map(gt, prediction), "errors: red wrong, grey right, black ignored")
    bottom = np.concatenate([captioned(palette[prediction], "prediction"), errors], axis=1)
    return np.concatenate([top, bottom], axis=0)


def caption_strip(text: str, width: int, height: int = CAPTION_HEIGHT) -> NDArray[np.uint8]:
    """A heightxwidthx3 dark strip with `text` in white, shrunk to fit the width."""
    strip = np.zeros((height, width, 3), np.uint8)
    scale = 0.5
    text_width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    if text_width > width - 8:
        scale *= (width - 8) / text_width
    cv2.putText(strip, text, (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def captioned(image: NDArray[np.uint8], text: str) -> NDArray[np.uint8]:
    """`image` (HxWx3 uint8) with a caption strip above it: (H + CAPTION_HEIGHT)xWx3."""
    return np.concatenate([caption_strip(text, image.shape[1]), image], axis=0)


def legend_strip(width: int, entries: Sequence[tuple[str, Sequence[int]]], row_height: int = 20) -> NDArray[np.uint8]:
    """A dark strip `width` pixels wide holding a colour swatch and the name of each (name, RGB) entry,
    packed left to right in as many rows as they need (for pictures whose side has no room for a panel)."""
    cells: list[tuple[int, int, str, Sequence[int]]] = []  # row, x, name, colour
    row, x = 0, 6
    for name, color in entries:
        cell = 22 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)[0][0] + 14
        if x + cell > width and x > 6:
            row, x = row + 1, 6
        cells.append((row, x, name, color))
        x += cell
    strip = np.zeros(((row + 1) * row_height + 4, width, 3), np.uint8)
    for line, left, name, color in cells:
        top = 4 + line * row_height
        strip[top + 2 : top + 14, left : left + 16] = color
        cv2.putText(strip, name, (left + 22, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
    return strip
