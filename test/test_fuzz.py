"""Fuzzing with hypothesis: every decoder and loader either works or raises a clear SemsegError,
and node callbacks fed the same garbage count it and keep answering good messages."""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rosutil import isolate_ros_domain, make_image_msg, spinning, wait_for

isolate_ros_domain()

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField  # noqa: E402

from semseg_ros.calibration import Calibration  # noqa: E402
from semseg_ros.errors import SemsegError  # noqa: E402
from semseg_ros.fusion.label_points import FusionSettings, label_points  # noqa: E402
from semseg_ros.node_params import FUSION_PARAMS, SEGMENTATION_PARAMS  # noqa: E402
from semseg_ros.paths import resolve_data_file  # noqa: E402
from semseg_ros.ros.conversions import ENCODINGS, compressed_to_rgb, image_to_rgb  # noqa: E402
from semseg_ros.ros.fusion_node import FusionNode  # noqa: E402
from semseg_ros.ros.node_process import ros_arguments  # noqa: E402
from semseg_ros.ros.pointcloud import read_points  # noqa: E402
from semseg_ros.ros.segmentation_node import SegmentationNode  # noqa: E402
from semseg_ros.synth import writers  # noqa: E402
from semseg_ros.train.config import load_config  # noqa: E402

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NODE_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
BYTES_PER_PIXEL = {name: channels * width for name, (channels, width) in ENCODINGS.items()}


# ---------------------------------------------------------------- message strategies
@st.composite
def image_messages(draw: Any) -> Image:
    encoding = draw(st.sampled_from([*ENCODINGS, "rgb16", "32FC1", "bayer_rggb8", "", "RGB8", "jpeg"]))
    width, height = draw(st.integers(0, 33)), draw(st.integers(0, 9))
    row = width * BYTES_PER_PIXEL.get(encoding, 3)
    step = draw(st.one_of(st.just(row), st.integers(0, row + 9)))
    size = draw(st.one_of(st.just(step * height), st.integers(0, step * height + 40)))
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=draw(st.integers(0, 1)), step=step)
    msg.data = draw(st.binary(min_size=size, max_size=size))
    return msg


def _encoded(kind: str) -> bytes:
    picture = np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)
    return cv2.imencode(kind, picture)[1].tobytes()


@functools.cache
def png_bomb() -> bytes:
    """8000 x 8000 black pixels in about 60 kB of PNG (192 MB decoded)."""
    return cv2.imencode(".png", np.zeros((8000, 8000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


@st.composite
def compressed_messages(draw: Any) -> CompressedImage:
    real = _encoded(draw(st.sampled_from([".jpg", ".png"])))
    cut = draw(st.integers(0, len(real)))
    data = draw(st.sampled_from(["real", "truncated", "random", "flipped", "bomb"]))
    if data == "bomb":
        payload = png_bomb()
    elif data == "truncated":
        payload = real[:cut]
    elif data == "random":
        payload = draw(st.binary(max_size=200))
    elif data == "flipped":
        payload = real[:cut] + bytes([real[cut % len(real)] ^ 0xFF]) + real[cut + 1 :]
    else:
        payload = real
    return CompressedImage(format=draw(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "", "tiff"])), data=payload)


@st.composite
def plausible_clouds(draw: Any) -> PointCloud2:
    """Well-formed layouts (float32 or float64 x y z, optional intensity, padding, row padding,
    either endianness) holding any float values, NaN and inf included."""
    datatype = draw(st.sampled_from([7, 8]))
    size = 4 if datatype == 7 else 8
    names = ["x", "y", "z"] + (["intensity"] if draw(st.booleans()) else [])
    padding = draw(st.integers(0, 8))
    point_step = len(names) * size + padding
    width, height = draw(st.integers(1, 30)), draw(st.integers(1, 3))
    row_step = width * point_step + draw(st.sampled_from([0, 0, 4]))
    big = draw(st.booleans())
    values = draw(
        st.lists(
            st.floats(width=size * 8, allow_nan=True, allow_infinity=True),
            min_size=height * width * len(names),
            max_size=height * width * len(names),
        )
    )
    points = np.asarray(values, (">" if big else "<") + ("f4" if size == 4 else "f8")).reshape(height, width, len(names))
    rows = np.zeros((height, row_step), np.uint8)
    for column, _ in enumerate(names):
        chunk = np.ascontiguousarray(points[:, :, column]).view(np.uint8).reshape(height, width, size)
        for point in range(width):
            start = point * point_step + column * size
            rows[:, start : start + size] = chunk[:, point]
    fields = [PointField(name=n, offset=i * size, datatype=datatype, count=1) for i, n in enumerate(names)]
    msg = PointCloud2(height=height, width=width, fields=fields, is_bigendian=big, point_step=point_step, row_step=row_step)
    msg.data = rows.tobytes()
    return msg


@st.composite
def cloud_messages(draw: Any) -> PointCloud2:
    names = draw(st.lists(st.sampled_from(["x", "y", "z", "intensity", "ring", "rgb"]), max_size=6, unique=True))
    if draw(st.booleans()):
        names = ["x", "y", "z"] + [n for n in names if n not in "xyz"]
    fields = [PointField(name=n, offset=draw(st.integers(0, 36)), datatype=draw(st.integers(0, 9)), count=1) for n in names]
    width, height = draw(st.integers(0, 40)), draw(st.integers(0, 3))
    point_step = draw(st.integers(0, 40))
    row_step = draw(st.one_of(st.just(width * point_step), st.integers(0, width * point_step + 20)))
    size = draw(st.one_of(st.just(row_step * height), st.integers(0, row_step * height + 50)))
    msg = PointCloud2(height=height, width=width, fields=fields, is_bigendian=draw(st.booleans()), point_step=point_step, row_step=row_step)
    msg.data = draw(st.binary(min_size=size, max_size=size))
    return msg


# ---------------------------------------------------------------- decoders
def works_or_fails_clearly(load: Any, *args: Any) -> Any:
    """load(*args), or None after checking it raised a SemsegError with a message (tallied as events)."""
    try:
        value = load(*args)
    except SemsegError as exc:
        event("rejected")
        assert str(exc)
        return None
    event("accepted")
    return value


@FUZZ
@given(image_messages())
def test_image_decoder_returns_rgb_or_a_clear_error(msg: Image) -> None:
    rgb = works_or_fails_clearly(image_to_rgb, msg)
    assert rgb is None or (rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8)


@FUZZ
@given(compressed_messages())
def test_compressed_decoder_returns_rgb_or_a_clear_error(msg: CompressedImage) -> None:
    rgb = works_or_fails_clearly(compressed_to_rgb, msg)
    assert rgb is None or (rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8)


@FUZZ
@given(st.one_of(cloud_messages(), plausible_clouds()))
def test_cloud_reader_returns_finite_points_or_a_clear_error(msg: PointCloud2) -> None:
    result = works_or_fails_clearly(read_points, msg)
    if result is not None:
        xyz, intensity, indices = result
        assert xyz.shape == (len(indices), 3) and np.isfinite(xyz).all()
        assert intensity is None or intensity.shape == (len(indices),)
        assert ((indices >= 0) & (indices < msg.width * msg.height)).all()


@FUZZ
@given(st.lists(st.sampled_from([0.0, -1.0, 1.0, 5.0, 1e-30, 1e30, math.nan, math.inf, -math.inf]), min_size=3, max_size=90))
def test_fusion_math_survives_any_float_values(values: list[float]) -> None:
    xyz = np.asarray(values[: len(values) // 3 * 3], np.float32).reshape(-1, 3)
    calibration = _calibration()
    mask = np.random.default_rng(0).integers(0, 19, (calibration.image_size[1], calibration.image_size[0]), dtype=np.uint8)
    labelled = label_points(xyz, mask, calibration, FusionSettings())
    assert labelled.labels.shape == (len(xyz),)
    assert ((labelled.labels < 19) | (labelled.labels == 255)).all()
    assert (labelled.labels[~np.isfinite(xyz).all(axis=1)] == 255).all()


# ---------------------------------------------------------------- files
@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drive = writers.write_kitti_raw(tmp_path_factory.mktemp("fuzz_drive"), frames=1, seed=1, progress=False)
    return drive.parent


def _calibration() -> Calibration:
    """The KITTI 2011_09_26 camera 2 projection and a rounded velodyne-to-camera extrinsic."""
    p = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.003]])
    extrinsic = np.array([[0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1]], float)
    return Calibration.from_projection(p, extrinsic, (1242, 375))


@st.composite
def corruptions(draw: Any, text: str) -> str:
    """Text with a few random edits: deleted, duplicated or replaced spans, a cut, odd characters."""
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        span = draw(st.integers(1, 12))
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "cut", "insert"]))
        if kind == "delete":
            text = text[:at] + text[at + span :]
        elif kind == "duplicate":
            text = text[: at + span] + text[at : at + span] + text[at + span :]
        elif kind == "cut":
            text = text[:at]
        else:
            noise = draw(st.text(alphabet="0123456789.-e :[]{}x\n\t#'\"!&*|>%@,", min_size=1, max_size=span))
            text = text[:at] + noise + text[at + (span if kind == "replace" else 0) :]
    return text


@FUZZ
@given(st.data())
def test_corrupt_kitti_calibration_loads_or_fails_clearly(calib_dir: Path, tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    folder = tmp_path_factory.mktemp("calib", numbered=True)
    name = data.draw(st.sampled_from(["calib_cam_to_cam.txt", "calib_velo_to_cam.txt"]))
    for source in calib_dir.glob("calib_*.txt"):
        shutil.copy(source, folder / source.name)
    (folder / name).write_text(data.draw(corruptions((calib_dir / name).read_text())))
    calibration = works_or_fails_clearly(Calibration.from_kitti_raw, folder)
    if calibration is not None:
        uv, depth = calibration.project(np.array([[10.0, 0.0, 0.0]]))
        assert uv.shape == (1, 2) and depth.shape == (1,)
    shutil.rmtree(folder)


def _mutated_mapping(data: Any, draw: Any) -> Any:
    """`data` with one random value (at any depth) replaced by a value of a random type."""
    if not isinstance(data, dict) or not data:
        return data
    key = draw(st.sampled_from(sorted(data)))
    child = data[key]
    if isinstance(child, dict) and child and draw(st.booleans()):
        return {**data, key: _mutated_mapping(child, draw)}
    junk = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8), st.lists(st.integers(-5, 5)))
    return {**data, key: draw(junk)}


def corrupted_copy(original: Path, data: Any, folder: Path) -> Path:
    """`original` with random text edits, or with one value replaced by a random type, written to `folder`."""
    text = original.read_text()
    if data.draw(st.booleans()):
        text = data.draw(corruptions(text))
    else:
        text = yaml.safe_dump(_mutated_mapping(yaml.safe_load(text), data.draw))
    path = folder / original.name
    path.write_text(text)
    return path


@FUZZ
@given(st.data())
def test_corrupt_node_params_files_validate_or_fail_clearly(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    original = resolve_data_file(Path("config/kitti.yaml"), "config")
    path = corrupted_copy(original, data, tmp_path_factory.mktemp("params", numbered=True))
    try:
        ros_arguments(path, [])  # what every runner does first
    except SemsegError as exc:
        event("rejected")
        assert str(path) in str(exc)
    else:
        event("accepted")


@FUZZ
@given(st.data())
def test_corrupt_training_configs_load_or_fail_clearly(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    original = Path(__file__).parents[1] / "config/train/synthetic_unet_mobilenet.yaml"
    path = corrupted_copy(original, data, tmp_path_factory.mktemp("train_config", numbered=True))
    config = works_or_fails_clearly(load_config, path)
    assert config is None or config.train.epochs > 0


# ---------------------------------------------------------------- node callbacks
class Listener(Node):
    def __init__(self) -> None:
        super().__init__(f"fuzz_listener_{int(time.monotonic() * 1e6)}")
        self.image_pub = self.create_publisher(Image, "image", 10)
        self.masks: list[Image] = []
        self.create_subscription(Image, "mask", self.masks.append, 10)


@pytest.fixture(scope="module")
def segmentation(ros: Any, tiny_checkpoint: Path) -> Any:
    params = {"model": str(tiny_checkpoint), "backend": "torch", "device": "cpu", "warmup_runs": 0}
    node, listener = SegmentationNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]), Listener()
    with spinning(node, listener):
        assert wait_for(lambda: node.pubs["mask"].get_subscription_count() > 0)
        yield node, listener
    node.destroy_node()
    listener.destroy_node()


@NODE_FUZZ
@given(st.one_of(image_messages(), compressed_messages()))
def test_segmentation_node_counts_garbage_and_never_raises(segmentation: Any, msg: Any) -> None:
    node, _ = segmentation
    before = (node.stats.processed, node.stats.rejected, node.stats.failed)
    node._process(msg)  # what the worker thread calls for each frame
    after = (node.stats.processed, node.stats.rejected, node.stats.failed)
    event("processed" if after[0] > before[0] else "rejected")
    assert after[2] == before[2], "a bad message must be rejected, not fail inside the model"
    assert after[0] + after[1] == before[0] + before[1] + 1


def test_segmentation_node_rejects_a_png_bomb_from_its_header(segmentation: Any) -> None:
    """Before: this 62 kB PNG on image/compressed grew the node by 5.5 GB while it decoded 8000x8000 pixels."""
    node, _ = segmentation
    rejected, failed = node.stats.rejected, node.stats.failed
    start = time.perf_counter()
    node._process(CompressedImage(format="png", data=png_bomb()))
    assert (node.stats.rejected, node.stats.failed) == (rejected + 1, failed)
    assert time.perf_counter() - start < 1.0, "refused from the header, before any decoding"
    assert node.config.max_image_pixels == 50_000_000


def test_segmentation_node_answers_a_good_frame_after_the_fuzzing(segmentation: Any) -> None:
    node, listener = segmentation
    good = make_image_msg(np.random.default_rng(2).integers(0, 255, (40, 90, 3), dtype=np.uint8), "rgb8", stamp=(7, 7))
    deadline = time.monotonic() + 10
    while not any(m.header.stamp.sec == 7 for m in listener.masks) and time.monotonic() < deadline:
        listener.image_pub.publish(good)
        wait_for(lambda: any(m.header.stamp.sec == 7 for m in listener.masks), timeout=0.5)
    assert any(m.header.stamp.sec == 7 and (m.width, m.height) == (90, 40) for m in listener.masks)
    assert node.stats.failed == 0


@pytest.fixture(scope="module")
def fusion(ros: Any, calib_dir: Path) -> Any:
    params = {"calibration_source": "kitti_raw", "kitti_calib_dir": str(calib_dir)}
    node = FusionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    yield node
    node.destroy_node()


@NODE_FUZZ
@given(st.one_of(cloud_messages(), plausible_clouds()), image_messages(), st.booleans())
def test_fusion_node_counts_garbage_and_never_raises(fusion: Any, cloud: PointCloud2, mask: Image, good_mask: bool) -> None:
    if good_mask:  # let clouds reach the fusion math
        mask = make_image_msg(np.zeros((375, 1242, 3), np.uint8), "mono8")
    before = sum(fusion.stats.counts().values())
    counts = fusion.stats.counts()
    fusion._fuse(cloud, mask)
    event(next(name for name, value in fusion.stats.counts().items() if value > counts[name]))
    assert fusion.stats.failed == 0
    assert sum(fusion.stats.counts().values()) == before + 1


def test_fusion_node_fuses_a_good_pair_after_the_fuzzing(fusion: Any) -> None:
    xyz = np.array([[10.0, 0.0, 0.0], [15.0, 1.0, -0.5], [20.0, -2.0, 0.0]], np.float32)
    cloud = PointCloud2(height=1, width=3, point_step=12, row_step=36, is_bigendian=False)
    cloud.fields = [PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    cloud.data = xyz.tobytes()
    fused = fusion.stats.fused
    fusion._fuse(cloud, make_image_msg(np.zeros((375, 1242, 3), np.uint8), "mono8"))
    assert fusion.stats.fused == fused + 1 and fusion.stats.failed == 0


# ---------------------------------------------------------------- every subscription and every parameter
JSON_KEYS = ["classes", "colors", "radius", "min_points", "car", "person", "label_set", "ids", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from(JSON_KEYS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
json_texts = st.one_of(
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.text(alphabet='[]{}",:0123456789e.-NaInfity ', max_size=60),
)
BASIC_TYPES = {
    "boolean": st.booleans(),
    "octet": st.integers(0, 255),
    "uint8": st.integers(0, 255),
    "char": st.integers(0, 255),
    "int8": st.integers(-(2**7), 2**7 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32),
    "double": st.floats(),
    "string": st.one_of(st.text(max_size=40), json_texts),
}


def field_values(kind: str) -> Any:
    """Any value of a rosidl field type ('uint32', 'double[12]', 'sequence<uint8>', 'std_msgs/Header' ...)."""
    if match := re.fullmatch(r"sequence<(.+?)(?:, (\d+))?>", kind):
        inner, bound = match.group(1), int(match.group(2) or 12)
        if inner in ("uint8", "octet"):
            return st.binary(max_size=min(bound, 400))
        return st.lists(field_values(inner), max_size=min(bound, 12))
    if match := re.fullmatch(r"(.+)\[(\d+)\]", kind):
        return st.lists(field_values(match.group(1)), min_size=int(match.group(2)), max_size=int(match.group(2)))
    if kind.startswith("string<="):
        return st.text(max_size=int(kind[8:]))
    if kind in BASIC_TYPES:
        return BASIC_TYPES[kind]
    package, name = kind.split("/")
    return ros_messages(getattr(importlib.import_module(f"{package}.msg"), name))


def ros_messages(kind: Any) -> Any:
    """Messages of any rosidl type with every field drawn at random (bounded sizes)."""
    fields = kind.get_fields_and_field_types()

    def build(values: dict[str, Any]) -> Any:
        msg = kind()
        for name, value in values.items():
            setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries({name: st.deferred(lambda kind=kind_: field_values(kind)) for name, kind_ in fields.items()}).map(build)


def parameter_values(param: Any) -> Any:
    """Any value rclpy can carry, weighted towards the parameter's own type and structure."""
    own = {bool: st.booleans(), int: st.integers(-(2**63), 2**63 - 1), float: st.floats(), str: st.one_of(st.text(max_size=30), json_texts)}
    anything = st.one_of(
        *own.values(),
        st.lists(st.floats(), max_size=20),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
        st.lists(st.text(max_size=5), max_size=3),
        st.lists(st.booleans(), max_size=3),
    )
    if isinstance(param.default, list):
        return st.one_of(st.lists(st.floats(), min_size=len(param.default), max_size=len(param.default)), anything)
    return st.one_of(own[type(param.default)], anything)


def drive_parameter(node: Any, schema: Any, data: Any, errors: Any) -> None:
    param = data.draw(st.sampled_from(schema))
    value = data.draw(parameter_values(param))
    original = node.get_parameter(param.name).value
    before = errors()
    result = node.set_parameters([Parameter(param.name, value=value)])[0]
    event("accepted" if result.successful else "refused")
    try:
        assert errors() == before, f"{param.name}={value!r} reached the safety net instead of a check"
        if result.successful:
            assert param.check(value) is None and param.live
            assert getattr(node.config, param.name) == value
        else:
            assert result.reason and getattr(node.config, param.name) == original
    finally:
        node.set_parameters([Parameter(param.name, value=original)])


def drive_subscriptions(node: Any, data: Any, errors: Any) -> None:
    for subscription in node.subscriptions:
        msg = data.draw(ros_messages(subscription.msg_type), label=subscription.topic_name)
        before = errors()
        if subscription._callback_type == subscription.CallbackType.WithMessageInfo:
            info = data.draw(
                st.dictionaries(st.sampled_from(["publication_sequence_number", "publisher_gid", "x"]), st.integers(-5, 2**64) | st.none())
            )
            subscription.callback(msg, info)
        else:
            subscription.callback(msg)
        assert errors() == before, f"{subscription.topic_name}: {msg!r:.300} reached the safety net instead of a check"


@pytest.fixture(scope="module")
def fusion_everything(ros: Any) -> Any:
    """A fusion node with every subscription: points, mask, labels, confidence, camera_info."""
    node = FusionNode(parameter_overrides=[Parameter("calibration_source", value="camera_info"), Parameter("use_confidence", value=True)])
    assert {s.topic_name for s in node.subscriptions} == {"/points", "/mask", "/labels", "/confidence", "/camera_info"}
    yield node
    node.destroy_node()


@NODE_FUZZ
@given(st.data())
def test_every_segmentation_parameter_takes_any_value_or_refuses_it(segmentation: Any, data: Any) -> None:
    node, _ = segmentation
    drive_parameter(node, SEGMENTATION_PARAMS, data, lambda: node.stats.callback_errors)


@NODE_FUZZ
@given(st.data())
def test_every_fusion_parameter_takes_any_value_or_refuses_it(fusion_everything: Any, data: Any) -> None:
    node = fusion_everything
    drive_parameter(node, FUSION_PARAMS, data, lambda: node.stats.callback_errors)


@NODE_FUZZ
@given(st.data())
def test_every_segmentation_subscription_survives_any_message(segmentation: Any, data: Any) -> None:
    node, _ = segmentation
    drive_subscriptions(node, data, lambda: node.stats.callback_errors)


@NODE_FUZZ
@given(st.data())
def test_every_fusion_subscription_survives_any_message(fusion_everything: Any, data: Any) -> None:
    node = fusion_everything
    drive_subscriptions(node, data, lambda: node.stats.callback_errors + node.stats.failed)
