"""fusion_node with real rclpy: stamp pairing, labelled clouds decoded from raw bytes, odd layouts, bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rosutil import isolate_ros_domain, spinning, wait_for

isolate_ros_domain()

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2, PointField  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from semseg_ros.data.kitti_raw import KittiDrive, read_velodyne  # noqa: E402
from semseg_ros.fusion.label_points import FusionSettings, label_points  # noqa: E402
from semseg_ros.labels import get_label_set  # noqa: E402
from semseg_ros.ros.fusion_node import FusionNode  # noqa: E402
from semseg_ros.synth import writers  # noqa: E402

TRAIN = get_label_set("cityscapes19")


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> KittiDrive:
    return KittiDrive(writers.write_kitti_raw(tmp_path_factory.mktemp("fusion_node"), frames=2, seed=3, progress=False))


def cloud_msg(xyz: np.ndarray, stamp: float, layout: str = "kitti", frame: str = "velo_link") -> PointCloud2:
    """A PointCloud2 built by hand. layouts: kitti (x y z intensity), ouster-like (padding, ring, time), no_z."""
    n = len(xyz)
    if layout == "kitti":
        fields = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7)]
        step = 16
    elif layout == "ouster":
        fields = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("t", 16, 6), ("intensity", 20, 7), ("ring", 24, 4)]
        step = 32
    else:
        fields = [("x", 0, 7), ("y", 4, 7)]
        step = 8
    data = np.zeros((n, step), np.uint8)
    for name, offset, datatype in fields:
        values = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}.get(name, np.arange(n) % 64)
        dtype = {7: "<f4", 6: "<u4", 4: "<u2"}[datatype]
        data[:, offset : offset + np.dtype(dtype).itemsize] = (
            np.ascontiguousarray(values, dtype).view(np.uint8).reshape(n, np.dtype(dtype).itemsize)
        )
    msg = PointCloud2()
    msg.header.frame_id = frame
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round((stamp % 1) * 1e9)
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=offset, datatype=datatype, count=1) for name, offset, datatype in fields]
    msg.is_bigendian, msg.point_step, msg.row_step, msg.is_dense = False, step, step * n, False
    msg.data = data.tobytes()
    return msg


def mask_msg(mask: np.ndarray, stamp: float, encoding: str = "mono8") -> Image:
    msg = Image()
    msg.header.frame_id = "camera_color_left"
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round((stamp % 1) * 1e9)
    msg.height, msg.width = mask.shape
    msg.encoding, msg.step = encoding, mask.shape[1]
    msg.data = mask.tobytes()
    return msg


def decode(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Fields of a published cloud, read straight from its bytes."""
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.width * msg.height, msg.point_step)
    kinds = {7: "<f4", 5: "<i4", 2: "u1"}
    out = {}
    for field in msg.fields:
        dtype = np.dtype(kinds[field.datatype])
        out[field.name] = np.ascontiguousarray(raw[:, field.offset : field.offset + dtype.itemsize]).view(dtype).ravel()
    return out


class Probe(Node):
    def __init__(self) -> None:
        super().__init__(f"fusion_probe_{int(time.monotonic() * 1e6)}")
        self.points_pub = self.create_publisher(PointCloud2, "points", 10)  # reliable, as the bag player offers
        self.mask_pub = self.create_publisher(Image, "mask", 10)
        self.clouds: list[PointCloud2] = []
        self.markers: list[MarkerArray] = []
        self.create_subscription(PointCloud2, "labelled_points", self.clouds.append, 10)
        self.create_subscription(MarkerArray, "clusters", self.markers.append, 10)


@contextmanager
def running(drive: KittiDrive, **overrides: Any) -> Iterator[tuple[FusionNode, Probe]]:
    """A fusion node (see make_node) and a probe, spinning; both destroyed afterwards."""
    node, probe = make_node(drive, **overrides), Probe()
    try:
        with spinning(node, probe):
            yield node, probe
    finally:
        node.destroy_node()
        probe.destroy_node()


def make_node(drive: KittiDrive, **overrides: Any) -> FusionNode:
    params = {
        "calibration_source": "kitti_raw",
        "kitti_calib_dir": str(drive.path.parent),
        "slop": 0.02,
        "diagnostics_period": 0.2,
        **overrides,
    }
    return FusionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def frame_data(drive: KittiDrive, index: int) -> tuple[np.ndarray, np.ndarray]:
    frame = drive.frames()[index]
    xyz = read_velodyne(drive.velodyne_path(frame))[:, :3]
    semantic = cv2.imread(str(drive.image_dir / "semantic" / f"{frame}.png"), cv2.IMREAD_UNCHANGED)
    return xyz, TRAIN.map_cityscapes_ids(semantic)


def exchange(probe: Probe, cloud: PointCloud2, mask: Image, expect: bool = True, timeout: float = 8.0) -> PointCloud2 | None:
    before = len(probe.clouds)

    def answer() -> PointCloud2 | None:  # the labelled cloud of `cloud`: reliable copies of earlier pairs may come first
        return next((c for c in probe.clouds[before:] if c.header.stamp == cloud.header.stamp), None)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe.mask_pub.publish(mask)
        probe.points_pub.publish(cloud)
        if wait_for(lambda: answer() is not None, timeout=0.4 if expect else 1.0):
            return answer()
        if not expect:
            return None
    raise AssertionError("no labelled cloud")


def test_labelled_cloud_matches_the_core(ros: Any, drive: KittiDrive) -> None:
    xyz, mask = frame_data(drive, 0)
    with running(drive) as (_, probe):
        out = exchange(probe, cloud_msg(xyz, 100.013), mask_msg(mask, 100.0))  # 13 ms apart: within slop
        assert (
            out is not None
            and out.header.frame_id == "velo_link"
            and out.header.stamp.sec == 100
            and out.header.stamp.nanosec == 13_000_000
        )
        fields = decode(out)
        expected = label_points(
            xyz,
            mask,
            drive.calibration,
            FusionSettings(occlusion=True, occlusion_window=2, occlusion_tolerance=0.3, occlusion_tolerance_ratio=0.1),
        )
        np.testing.assert_array_equal(fields["label"], expected.labels)
        np.testing.assert_allclose(fields["x"], xyz[:, 0])
        colours = TRAIN.palette()[expected.labels].astype(np.uint32)
        np.testing.assert_array_equal(fields["rgb"].view(np.uint32), (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2])
        car = TRAIN.classes.index("car")
        assert (fields["cluster"][fields["label"] == car] >= 0).mean() > 0.8 and (fields["cluster"][fields["label"] == 0] == -1).all()
        assert wait_for(lambda: probe.markers)
        markers = probe.markers[-1].markers
        assert markers[0].action == markers[0].DELETEALL and any(m.ns == "boxes" for m in markers)


def test_stamps_beyond_the_slop_are_never_fused(ros: Any, drive: KittiDrive) -> None:
    xyz, mask = frame_data(drive, 1)
    with running(drive) as (node, probe):
        exchange(probe, cloud_msg(xyz, 200.0), mask_msg(mask, 200.0))
        fused = -1
        while fused != node.stats.fused:  # exchange() may have sent the pair twice, reliably: let every copy land
            fused = node.stats.fused
            time.sleep(1.0)
        assert exchange(probe, cloud_msg(xyz, 201.0), mask_msg(mask, 201.1), expect=False) is None
        assert node.stats.fused == fused
        exchange(probe, cloud_msg(xyz, 202.5), mask_msg(mask, 202.5))  # a pair 1 s newer flushes the stale ones
        assert node.stats.fused > fused and sum(node.sync.stats.unmatched.values()) >= 1


def test_odd_layouts_nans_and_bad_input_are_survived(ros: Any, drive: KittiDrive) -> None:
    xyz, mask = frame_data(drive, 0)
    with_nans = xyz.copy()
    with_nans[::100] = np.nan
    with running(drive, drop_unlabelled=True) as (node, probe):
        out = exchange(probe, cloud_msg(with_nans, 300.0, "ouster"), mask_msg(mask, 300.0))
        fields = decode(out)
        assert np.isfinite(fields["x"]).all() and (fields["label"] != 255).all() and "intensity" in fields
        start = node.stats.counts()
        probe.points_pub.publish(cloud_msg(xyz, 301.0, "no_z"))
        probe.mask_pub.publish(mask_msg(mask, 301.0))
        assert wait_for(lambda: node.stats.rejected_cloud > start["rejected_cloud"])
        probe.points_pub.publish(cloud_msg(xyz[:0], 302.0))
        probe.mask_pub.publish(mask_msg(mask, 302.0))
        assert wait_for(lambda: node.stats.rejected_cloud > start["rejected_cloud"] + 1)
        probe.points_pub.publish(cloud_msg(xyz, 303.0))
        probe.mask_pub.publish(mask_msg(mask, 303.0, encoding="bgr8"))  # a colour image is no class mask
        assert wait_for(lambda: node.stats.rejected_mask > start["rejected_mask"])
        assert exchange(probe, cloud_msg(xyz, 304.0), mask_msg(mask, 304.0)) is not None  # still fusing


def test_looped_bag_stamps_restart_the_matcher(ros: Any, drive: KittiDrive) -> None:
    xyz, mask = frame_data(drive, 0)
    with running(drive) as (node, probe):
        exchange(probe, cloud_msg(xyz, 500.0), mask_msg(mask, 500.0))
        assert exchange(probe, cloud_msg(xyz, 10.0), mask_msg(mask, 10.0)) is not None  # time jumped back 490 s
        assert node.sync.stats.resets >= 1


def test_missing_calibration_is_a_clear_start_error(ros: Any) -> None:
    from semseg_ros.errors import SemsegError

    with pytest.raises(SemsegError, match="needs kitti_calib_dir"):
        FusionNode(parameter_overrides=[Parameter("calibration_source", value="kitti_raw")])
    with pytest.raises(SemsegError, match="calibration file not found"):
        FusionNode(parameter_overrides=[Parameter("kitti_calib_dir", value=str(Path("/nonexistent")))])


def test_camera_stream_stopping_and_resuming(ros: Any, drive: KittiDrive) -> None:
    xyz, mask = frame_data(drive, 0)
    with running(drive, queue_size=5) as (node, probe):
        exchange(probe, cloud_msg(xyz, 700.0), mask_msg(mask, 700.0))
        before = 0
        while before != len(probe.clouds):  # under load exchange() may have sent the pair twice, reliably: let every copy arrive
            before = len(probe.clouds)
            time.sleep(1.0)
        for step in range(1, 31):  # the camera stops: clouds only, for 3 s of stamps
            probe.points_pub.publish(cloud_msg(xyz, 700.0 + 0.1 * step))
            time.sleep(0.01)
        assert wait_for(lambda: node.sync.stats.unmatched["points"] >= 20)
        assert len(probe.clouds) == before and len(node.sync.queues["points"]) <= 5  # nothing fused, nothing piling up
        assert exchange(probe, cloud_msg(xyz, 704.0), mask_msg(mask, 704.0)) is not None  # the camera is back
        assert node.stats.failed == 0


def test_sim_time_clock_reset_keeps_diagnostics_and_fusion_going(ros: Any, drive: KittiDrive) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from rosgraph_msgs.msg import Clock

    diagnostics: list[DiagnosticArray] = []
    xyz, mask = frame_data(drive, 0)

    def run_clock(publisher: Any, start: float, seconds: float) -> None:
        for step in range(int(seconds / 0.05)):
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = int(start + step * 0.1), round(((start + step * 0.1) % 1) * 1e9)
            publisher.publish(clock)
            time.sleep(0.05)

    with running(drive, use_sim_time=True, diagnostics_period=0.5) as (node, probe):
        clock_pub = probe.create_publisher(Clock, "/clock", 10)
        probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        run_clock(clock_pub, 1000.0, 2.0)
        assert wait_for(lambda: any(d.header.stamp.sec >= 1000 for d in diagnostics), timeout=5)
        exchange(probe, cloud_msg(xyz, 1001.0), mask_msg(mask, 1001.0))
        count = len(diagnostics)
        run_clock(clock_pub, 5.0, 3.0)  # the bag loops with --clock: time jumps back by 995 s
        assert wait_for(lambda: any(5 <= d.header.stamp.sec < 1000 for d in diagnostics[count:]), timeout=5)
        assert exchange(probe, cloud_msg(xyz, 6.0), mask_msg(mask, 6.0)) is not None
        assert node.stats.failed == 0


@pytest.mark.parametrize("layout", ["object", "tracking", "odometry"])
def test_kitti_object_tracking_and_odometry_calibrations_fuse(ros: Any, drive: KittiDrive, tmp_path: Path, layout: str) -> None:
    """Regression: calibration_source kitti_object failed on every frame ("cannot rescale a calibration whose
    image size is unknown"); tracking files (R_rect, Tr_velo_cam without colons) did not even load."""
    text = writers.object_calibration_text(1242, 375)
    if layout == "tracking":
        text = text.replace("R0_rect:", "R_rect").replace("Tr_velo_to_cam:", "Tr_velo_cam").replace("Tr_imu_to_velo:", "Tr_imu_velo")
    elif layout == "odometry":
        rect = np.eye(4)
        rect[:3, :3] = drive.calibration.rectification
        tr = (rect @ drive.calibration.velo_to_cam)[:3]
        text = (
            "".join(line + "\n" for line in text.splitlines() if line.startswith("P"))
            + "Tr: "
            + " ".join(f"{v:.12e}" for v in tr.ravel())
            + "\n"
        )
    (tmp_path / "calib.txt").write_text(text)
    xyz, mask = frame_data(drive, 0)
    with running(drive, calibration_source="kitti_object", kitti_calib_file=str(tmp_path / "calib.txt")) as (node, probe):
        out = exchange(probe, cloud_msg(xyz, 800.0), mask_msg(mask, 800.0))
        expected = label_points(xyz, mask, drive.calibration)
        np.testing.assert_array_equal(decode(out)["label"], expected.labels)
        assert node.stats.failed == 0


def camera_info_msg(k: np.ndarray, d: list[float], p: np.ndarray, size: tuple[int, int], stamp: float) -> Any:
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header.frame_id = "camera_color_left"
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round((stamp % 1) * 1e9)
    msg.width, msg.height = size
    msg.distortion_model, msg.d = "plumb_bob", d
    msg.k, msg.r, msg.p = k.ravel().tolist(), np.eye(3).ravel().tolist(), p.ravel().tolist()
    return msg


def test_camera_info_distortion_is_applied_for_raw_masks_and_reported_for_rectified(ros: Any, drive: KittiDrive) -> None:
    """Regression: a camera_info with non-zero D was projected as if D were zero, silently."""
    from sensor_msgs.msg import CameraInfo

    from semseg_ros.calibration import Calibration

    k = np.array([[959.791, 0.0, 696.0217], [0.0, 956.9251, 224.1806], [0.0, 0.0, 1.0]])  # KITTI 2011_09_26 K_02, D_02
    d = [-0.3691481, 0.1968681, 0.001353473, 0.0005677587, -0.06770705]
    rect = np.eye(4)
    rect[:3, :3] = drive.calibration.rectification
    extrinsic = rect @ drive.calibration.velo_to_cam
    xyz, _ = frame_data(drive, 0)
    mask = np.random.default_rng(0).integers(0, 19, size=(512, 1392), dtype=np.uint8)
    info = camera_info_msg(k, d, np.column_stack([k, np.zeros(3)]), (1392, 512), 900.0)
    for mask_image in ("raw", "rectified"):
        overrides = {"calibration_source": "camera_info", "lidar_to_camera": extrinsic.ravel().tolist(), "mask_image": mask_image}
        with running(drive, **overrides) as (node, probe):
            info_pub = probe.create_publisher(CameraInfo, "camera_info", 10)
            assert wait_for(lambda info_pub=info_pub, node=node: info_pub.publish(info) or node.calibration is not None)
            out = exchange(probe, cloud_msg(xyz, 900.0), mask_msg(mask, 900.0))
            expected = label_points(xyz, mask, Calibration.from_camera_info(info, extrinsic, mask_image))
            np.testing.assert_array_equal(decode(out)["label"], expected.labels)
            if mask_image == "raw":
                assert node.calibration is not None and node.calibration.distortion is not None
                assert node.distortion == "applied (plumb_bob)"
                undistorted = label_points(xyz, mask, Calibration.from_projection(info.p, extrinsic, (1392, 512)))
                assert (undistorted.labels != expected.labels).mean() > 0.1  # what ignoring D gave
            else:
                assert node.calibration is not None and node.calibration.distortion is None
                assert node.distortion.startswith("not applied")


def test_raw_masks_need_a_camera_info_source(ros: Any, drive: KittiDrive) -> None:
    from semseg_ros.errors import SemsegError

    with pytest.raises(SemsegError, match="mask_image raw needs a camera_info calibration source"):
        make_node(drive, mask_image="raw")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"calibration_source": "camera_info", "lidar_to_camera": [0.0] * 16},
            "lidar_to_camera: its upper-left 3x3 block is not a rotation",
        ),
        ({"min_depth": 20.0, "max_depth": 10.0}, "min_depth 20.0 must be below max_depth 10.0"),
    ],
)
def test_parameters_that_contradict_each_other_are_refused_at_start(ros: Any, drive: KittiDrive, overrides: dict, message: str) -> None:
    """An all-zero extrinsic used to pass until the first camera_info; min > max left every point unlabelled."""
    from semseg_ros.errors import SemsegError

    with pytest.raises(SemsegError, match=message):
        make_node(drive, **overrides)


def remote_set(probe: Node, node_name: str, name: str, value: Any) -> Any:
    """`ros2 param set NODE NAME VALUE` through the node's parameter service; the SetParametersResult."""
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(probe, node_name)
    assert client.wait_for_services(timeout_sec=10.0)
    future = client.set_parameters([Parameter(name, value=value)])
    assert wait_for(future.done, timeout=10.0), f"{name}: the parameter service did not answer"
    return future.result().results[0]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("cluster_rules", '{"car": {"radius": "x"}}', "radius 'x'"),
        ("cluster_rules", '{"car": 5}', "expected {"),
        ("cluster_rules", '{"car": {"radius": -1}}', "radius -1"),
        ("cluster_rules", '{"car": {"radius": NaN}}', "radius nan"),
        ("cluster_rules", '{"car": {"radius": 1e400}}', "radius inf"),
        ("cluster_rules", '{"car": {"min_points": 0}}', "min_points 0"),
        ("cluster_rules", '{"car": {"min_points": 2.5}}', "min_points 2.5"),
        ("cluster_rules", '{"car": {"radius": 0.5, "extra": 1}}', "expected {"),
        ("cluster_rules", '{"unicorn": {"radius": 0.5}}', "unknown class unicorn"),
        ("cluster_rules", "[" * 100_000 + "]" * 100_000, "characters of JSON"),
        ("cluster_rules", "[" * 5_000 + "]" * 5_000, "not valid JSON"),
        ("cluster_classes", "car,unicorn", "unknown class unicorn; the label set has road, sidewalk"),
    ],
)
def test_bad_structured_parameters_are_refused_and_the_node_lives(ros: Any, drive: KittiDrive, name: str, value: str, reason: str) -> None:
    xyz, mask = frame_data(drive, 0)
    with running(drive) as (node, probe):
        before = (getattr(node.config, name), node.clustering)
        result = remote_set(probe, "fusion_node", name, value)
        assert not result.successful and reason in result.reason, result.reason
        assert (getattr(node.config, name), node.clustering) == before and node.stats.rejected_parameters == 1
        assert remote_set(probe, "fusion_node", "cluster_rules", '{"car": {"radius": 0.5}}').successful  # still answering
        assert node.clustering.rules[TRAIN.classes.index("car")].radius == 0.5
        assert exchange(probe, cloud_msg(xyz, 900.0), mask_msg(mask, 900.0)) is not None


def test_a_live_change_that_contradicts_another_parameter_is_refused(ros: Any, drive: KittiDrive) -> None:
    with running(drive) as (node, probe):
        assert remote_set(probe, "fusion_node", "max_depth", 10.0).successful
        result = remote_set(probe, "fusion_node", "min_depth", 100.0)
        assert not result.successful and "must be below max_depth 10.0" in result.reason
        assert node.config.min_depth == FusionSettings.min_depth and node.stats.rejected_parameters == 1


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"classes": ["road", "car"], "colors": [[128, 64, 128], [300, 0, 0]]}),  # OverflowError before
        json.dumps({"classes": ["road", "car"], "colors": [[128, 64, 128], [1e400, 0, 0]]}).replace("Infinity", "1e400"),
        json.dumps({"classes": ["road", "car"], "colors": [[128, 64, 128]]}),
        json.dumps({"classes": ["x"] * 300, "colors": [[0, 0, 0]] * 300}),
        json.dumps({"classes": [5], "colors": [[0, 0, 0]]}),
        '{"classes": ' + "[" * 100_000 + "]" * 100_000 + "}",  # RecursionError before
        "[" * 3_000 + "]" * 3_000,
        "not json",
    ],
)
def test_malformed_latched_labels_never_end_the_node(ros: Any, drive: KittiDrive, text: str) -> None:
    """`labels` is transient local: a bad one reaches every restart, so it must be refused, not fatal."""
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    xyz, mask = frame_data(drive, 0)
    latch = Node(f"labels_latch_{int(time.monotonic() * 1e6)}")
    publisher = latch.create_publisher(String, "labels", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    publisher.publish(String(data=text))  # before the node starts: delivered on subscription
    try:
        with running(drive) as (node, probe):
            assert wait_for(lambda: node.stats.rejected_labels == 1)
            assert node.classes == TRAIN.classes and node.stats.callback_errors == 0
            assert exchange(probe, cloud_msg(xyz, 950.0), mask_msg(mask, 950.0)) is not None
    finally:
        latch.destroy_node()


def test_a_good_labels_message_changes_names_colours_and_clustering(ros: Any, drive: KittiDrive, capfd: pytest.CaptureFixture[str]) -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    latch = Node(f"labels_good_{int(time.monotonic() * 1e6)}")
    publisher = latch.create_publisher(String, "labels", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    publisher.publish(String(data=json.dumps({"classes": ["road", "car"], "colors": [[1, 2, 3], [4, 5, 6]]})))
    try:
        with running(drive) as (node, probe):
            assert wait_for(lambda: node.classes == ("road", "car"))
            assert node.palette[1].tolist() == [4, 5, 6] and list(node.clustering.rules) == [1]  # car is id 1 now
            # the ready line named the default label set's classes: new ones are said once they arrive (called
            # here directly: the latched message may reach the node before this test reads the log)
            capfd.readouterr()
            three = {"classes": ["road", "car", "person"], "colors": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}
            node._on_labels(String(data=json.dumps(three)))
            assert "labels from the segmentation node: 3 classes, clustering ['car', 'person']" in capfd.readouterr().err
            node._on_labels(String(data=json.dumps({"classes": ["road", "car"], "colors": [[1, 2, 3], [4, 5, 6]]})))
            assert list(node.clustering.rules) == [1]
            for _ in range(2):  # logged each time a user asks for it (not throttled), once each time
                result = remote_set(probe, "fusion_node", "cluster_classes", "car,person")  # person: another label set's
                assert result.successful and list(node.clustering.rules) == [1]
            captured: list[str] = []

            def warnings() -> int:
                captured.append(capfd.readouterr().err)
                return "".join(captured).count("not clustering person: not in the label set (road, car)")

            assert wait_for(lambda: warnings() >= 2)
            time.sleep(0.2)
            assert warnings() == 2
            result = remote_set(probe, "fusion_node", "cluster_classes", "car,persn")  # in no label set: a typo
            assert not result.successful and "unknown class persn; the label set has road, car" in result.reason
    finally:
        latch.destroy_node()


def test_a_custom_class_is_warned_about_once_and_for_what_it_is(ros: Any, drive: KittiDrive, capfd: pytest.CaptureFixture[str]) -> None:
    """Regression: at start, a class of a custom model was said to be missing from the default label set (which
    the node only assumes until the labels topic arrives), and the check against the real labels was
    throttled into silence. Now the start says what it knows, and each new label set is checked aloud once."""
    from std_msgs.msg import String

    node = make_node(drive, cluster_classes="car,forklift,persn")
    try:
        err = capfd.readouterr().err
        assert "not clustering forklift, persn unless the labels topic names it: no built-in label set has it" in err
        assert (
            "clustering ['car'] of cityscapes19, the classes assumed until the labels topic arrives (then also forklift, persn if it names them)"
        ) in err
        custom = json.dumps({"classes": ["road", "car", "forklift"], "colors": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]})
        node._on_labels(String(data=custom))
        assert [node.classes[i] for i in node.clustering.rules] == ["car", "forklift"]
        node._on_labels(String(data=custom))  # latched again by a restarted segmentation node: nothing new
        err = capfd.readouterr().err
        assert err.count("not clustering persn: not in the label set (road, car, forklift)") == 1, err
        assert err.count("labels from the segmentation node: 3 classes, clustering ['car', 'forklift']") == 1, err
        node._on_labels(String(data=json.dumps({"classes": ["road", "car"], "colors": [[1, 2, 3], [4, 5, 6]]})))
        assert "not clustering forklift, persn: not in the label set (road, car)" in capfd.readouterr().err  # at once, not throttled
    finally:
        node.destroy_node()


def test_a_mask_arriving_before_an_older_one_is_still_fused(ros: Any, drive: KittiDrive) -> None:
    """Masks for t+0.5 then t+0.1, clouds for t+0.1 then t+0.5: both pairs fuse, whatever the arrival order."""
    xyz, mask = frame_data(drive, 0)
    with running(drive) as (node, probe):
        exchange(probe, cloud_msg(xyz, 1100.0), mask_msg(mask, 1100.0))  # discovery done, one pair fused

        def later() -> list[tuple[int, int]]:  # exchange may have sent 1100.0 more than once: copies still come
            stamps = [(c.header.stamp.sec, c.header.stamp.nanosec) for c in probe.clouds]
            return [stamp for stamp in stamps if stamp != (1100, 0)]

        probe.mask_pub.publish(mask_msg(mask, 1100.5))
        probe.mask_pub.publish(mask_msg(mask, 1100.1))
        assert wait_for(lambda: {round(t, 1) for t, _ in node.sync.queues["mask"]} >= {1100.1, 1100.5})  # both masks wait
        probe.points_pub.publish(cloud_msg(xyz, 1100.1))
        assert wait_for(lambda: len(later()) == 1)
        probe.points_pub.publish(cloud_msg(xyz, 1100.5))
        assert wait_for(lambda: len(later()) == 2)
        assert later() == [(1100, 100_000_000), (1100, 500_000_000)] and node.sync.stats.unmatched == {"points": 0, "mask": 0}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_pairing_goes_by_stamp_whatever_the_arrival_order(data: Any) -> None:
    """Frames 0.1 s apart, each stream delivered in any order within the 1 s reorder window: every frame pairs
    with its own partner exactly once."""
    from types import SimpleNamespace

    from semseg_ros.ros.sync import ApproximateSync

    frames = data.draw(st.integers(1, 8))
    stamps = [500.0 + 0.1 * i for i in range(frames)]

    def msg(stream: str, stamp: float) -> Any:
        return SimpleNamespace(stream=stream, header=SimpleNamespace(stamp=SimpleNamespace(sec=int(stamp), nanosec=round(stamp % 1 * 1e9))))

    arrivals = [msg("points", s) for s in data.draw(st.permutations(stamps))] + [msg("mask", s) for s in data.draw(st.permutations(stamps))]
    order = data.draw(st.permutations(range(len(arrivals))))
    a_order = [i for i in order if i < frames]
    b_order = [i for i in order if i >= frames]
    assert len(a_order) == len(b_order) == frames
    pairs: list[tuple[Any, Any]] = []
    sync = ApproximateSync(lambda a, b: pairs.append((a, b)), ("points", "mask"), slop=0.02, queue_size=frames)
    for index in order:
        sync.add(arrivals[index].stream, arrivals[index])
    assert sorted(round(a.header.stamp.nanosec / 1e8) for a, _ in pairs) == sorted(round(s % 1 * 10) for s in stamps)
    assert all(a.header.stamp == b.header.stamp for a, b in pairs) and sync.stats.unmatched == {"points": 0, "mask": 0}
    assert all((a.stream, b.stream) == ("points", "mask") for a, b in pairs)  # the callback gets the streams in their named order


def test_diagnostics_keep_coming_while_sim_time_stands_still(ros: Any, drive: KittiDrive) -> None:
    """use_sim_time with a paused or ended bag (no /clock): /diagnostics runs on a steady clock."""
    from diagnostic_msgs.msg import DiagnosticArray

    diagnostics: list[DiagnosticArray] = []
    with running(drive, use_sim_time=True, diagnostics_period=0.2) as (_, probe):
        probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        assert wait_for(lambda: sum(d.status[0].name.endswith("fusion_node") for d in diagnostics) >= 4, timeout=10)


def test_best_effort_masks_and_clouds_are_heard_when_the_parameters_say_so(ros: Any, drive: KittiDrive) -> None:
    """segmentation_node with `output_reliability: best_effort` and a best-effort lidar driver: fusion_node
    hears both with mask_reliability / points_reliability set to best_effort (reliable readers never would)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    xyz, mask = frame_data(drive, 0)
    best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    with running(drive, points_reliability="best_effort", mask_reliability="best_effort", points_depth=2, mask_depth=3) as (node, probe):
        probe.points_pub = probe.create_publisher(PointCloud2, "points", best_effort)
        probe.mask_pub = probe.create_publisher(Image, "mask", best_effort)
        assert exchange(probe, cloud_msg(xyz, 1200.0), mask_msg(mask, 1200.0)) is not None
        reliability = {
            i.qos_profile.reliability
            for t in ("/points", "/mask")
            for i in node.get_subscriptions_info_by_topic(t)
            if i.node_name == "fusion_node"
        }
        assert reliability == {ReliabilityPolicy.BEST_EFFORT}
