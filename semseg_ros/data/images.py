"""Image files and buffers decoded with bounded memory: the size is read from the header first.

A PNG of 8000x8000 identical pixels compresses to about 60 kB and decodes to 192 MB of RGB (plus
the decoder's own buffers), so every decode first reads width and height from the header with PIL
(`Image.open` is lazy: it parses the header only) and refuses images over `max_pixels`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from semseg_ros.errors import SemsegError

MAX_IMAGE_PIXELS = 50_000_000
"""Default bound on width * height (50 MP: a 8192x6104 photo; Cityscapes is 2 MP, KITTI 0.47 MP)."""


class ImageTooLarge(SemsegError):
    """An image whose header announces more pixels than allowed."""


def header_size(source: bytes | str | Path | IO[bytes], max_pixels: int = MAX_IMAGE_PIXELS, name: str = "image") -> tuple[int, int]:
    """(width, height) in pixels from the image header, without decoding the pixels.

    Raises `ImageTooLarge` when width * height > `max_pixels`, and `SemsegError` when the data is
    no image format PIL recognises (then no decoder gets to allocate for it either).
    """
    stream: IO[bytes] | str | Path = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound below decides
            with Image.open(stream) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"{name}: over {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, above the limit of {max_pixels}") from None
    except FileNotFoundError:
        raise SemsegError(f"{name}: file not found") from None
    except Image.UnidentifiedImageError:
        raise SemsegError(f"{name}: not a readable image (no image format PIL knows)") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... for data it cannot parse
        raise SemsegError(f"{name}: not a readable image ({' '.join(str(exc).split())[:120]})") from None
    check_pixels(width, height, max_pixels, name)
    return width, height


def check_pixels(width: int, height: int, max_pixels: int, name: str = "image") -> None:
    """Raise `ImageTooLarge` when a width x height image exceeds `max_pixels`."""
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{name}: {width}x{height} is {width * height / 1e6:.1f} MP, above the limit of {max_pixels / 1e6:g} MP "
            "(raise max_image_pixels if such images are expected)"
        )


def read_rgb(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> NDArray[np.uint8]:
    """An image file as HxWx3 uint8 RGB; its header size is checked against `max_pixels` before decoding.

    Raises SemsegError (ImageTooLarge for too many pixels) for missing, truncated or foreign files.
    """
    header_size(path, max_pixels, str(path))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SemsegError(f"{path}: cannot read image (missing, truncated or not an image)")
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)


LABEL_MODES = ("P", "L", "1", "I;16", "I;16B", "I")  # what np.array(Image.open(png)) turns into one id per pixel


def read_label_png(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> NDArray[np.uint8]:
    """A label PNG as HxW uint8 ids, read as the official Cityscapes evaluator reads it (PIL, np.array).

    Palette PNGs ("P") give their palette indices, 8-bit grey ("L") its values, 1-bit ("1") 0/1,
    16-bit grey ("I;16") its values (refused above 255: no label set has such ids). RGB(A),
    grey+alpha and palette+alpha images are no label ids and are refused with the reason, as are
    non-PNG files and images over `max_pixels` (checked from the header). Errors: SemsegError.
    """
    header_size(path, max_pixels, str(path))
    try:
        with Image.open(path) as image:
            kind, mode = image.format, image.mode
            if kind != "PNG":
                raise SemsegError(f"{path}: a label image must be a PNG (lossless), this is {kind}")
            if mode not in LABEL_MODES:
                why = (
                    "colours, not label ids (write label ids, e.g. `semseg predict --format labelid`)"
                    if mode.startswith("RGB")
                    else "not one id per pixel"
                )
                raise SemsegError(f"{path}: a {mode} PNG holds {why}; save a single-channel (L, P or 16-bit grey) PNG")
            label = np.array(image)
    except SemsegError:
        raise
    except Exception as exc:  # truncated or corrupt pixel data: PIL raises OSError, SyntaxError, ValueError ...
        raise SemsegError(f"{path}: cannot read the label PNG ({' '.join(str(exc).split())[:120]})") from None
    if label.ndim != 2:
        raise SemsegError(f"{path}: a {mode} PNG with {label.shape[2:]} channels is not one id per pixel")
    if label.size and int(label.max()) > 255:
        raise SemsegError(f"{path}: 16-bit label values up to {int(label.max())}; label ids must be 0..255")
    return label.astype(np.uint8)
