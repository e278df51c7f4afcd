"""Image message conversions without cv_bridge, against hand-encoded messages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosutil import image_from_msg, make_image_msg
from sensor_msgs.msg import CompressedImage

from semseg_ros.ros.conversions import ImageError, compressed_to_rgb, fill_image, image_to_rgb, mask_from_image

RGB = np.random.default_rng(0).integers(0, 255, (47, 124, 3), dtype=np.uint8)
GRAY = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_are_exact(encoding: str, pad: int) -> None:
    np.testing.assert_array_equal(image_to_rgb(make_image_msg(RGB, encoding, pad=pad)), RGB)


@pytest.mark.parametrize(("encoding", "big_endian"), [("mono8", False), ("mono16", False), ("mono16", True)])
def test_mono_encodings(encoding: str, big_endian: bool) -> None:
    decoded = image_to_rgb(make_image_msg(RGB, encoding, pad=3, big_endian=big_endian))
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], GRAY)


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_encodings(encoding: str) -> None:
    decoded = image_to_rgb(make_image_msg(RGB, encoding))
    smooth = cv2.GaussianBlur(RGB, (0, 0), 2)  # chroma is subsampled: compare on smooth content
    smooth_decoded = image_to_rgb(make_image_msg(smooth, encoding))
    assert decoded.shape == RGB.shape
    assert np.abs(smooth_decoded.astype(int) - smooth.astype(int)).mean() < 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": "32FC1"}, "unsupported encoding"),
        ({"width": 0}, "empty image"),
        ({"step": 10}, "step 10 is too small"),
        ({"data": b"\x00" * 100}, "data holds 100 bytes"),
    ],
)
def test_bad_messages_are_rejected_with_reasons(change: dict, message: str) -> None:
    msg = make_image_msg(RGB, "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError, match=message):
        image_to_rgb(msg)


def test_compressed_images() -> None:
    _, png = cv2.imencode(".png", RGB[..., ::-1])
    msg = CompressedImage(format="png", data=png.tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(msg), RGB)
    with pytest.raises(ImageError, match="corrupt"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8garbage"))
    with pytest.raises(ImageError, match="empty"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b""))


def test_fill_image_round_trip() -> None:
    from sensor_msgs.msg import Image

    source = make_image_msg(RGB, "rgb8", frame_id="cam", stamp=(5, 6))
    mask = (GRAY // 20).astype(np.uint8)
    out = fill_image(Image(), source.header, mask, "mono8")
    assert out.header.frame_id == "cam" and out.header.stamp.sec == 5 and out.step == 124
    np.testing.assert_array_equal(image_from_msg(out), mask)
    np.testing.assert_array_equal(image_from_msg(fill_image(Image(), source.header, RGB, "rgb8")), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
@pytest.mark.parametrize("pad", [0, 7])
def test_masks_are_read_in_place(encoding: str, pad: int) -> None:
    msg = make_image_msg(RGB, "mono8", pad=pad)
    msg.encoding = encoding
    mask = mask_from_image(msg)
    np.testing.assert_array_equal(mask, GRAY)  # row padding skipped
    assert np.shares_memory(mask, np.frombuffer(msg.data, np.uint8))  # the fusion node's hot path copies nothing
    with pytest.raises(ValueError, match="read-only"):
        mask[0, 0] = 1  # and cannot write into the message through it
    for bad, reason in (("rgb8", "must be mono8"), ("mono16", "must be mono8")):
        msg.encoding = bad
        with pytest.raises(ImageError, match=reason):
            mask_from_image(msg)
    msg.encoding, msg.step = encoding, 3
    with pytest.raises(ImageError, match="step 3 is too small"):
        mask_from_image(msg)
