"""kitti2bag output read back with rosbags and the mcap reader; the rclpy player replays it."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rosutil import spinning, wait_for
from scipy.spatial.transform import Rotation

from semseg_ros.bags import TYPESTORE, kitti_to_bag
from semseg_ros.data.kitti_raw import KittiDrive, read_timestamps, read_velodyne
from semseg_ros.errors import SemsegError
from semseg_ros.synth import writers
from semseg_ros.topics import TOPICS

# The player offers the recorded QoS (reliable): a listener that asks for it too cannot lose a sample
# under load (a lidar cloud is hundreds of UDP fragments) and fail a test about timing.
RELIABLE = 10


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> KittiDrive:
    return KittiDrive(writers.write_kitti_raw(tmp_path_factory.mktemp("bags"), frames=4, seed=9, width=320, height=96, progress=False))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_reads_back_with_rosbags(drive: KittiDrive, tmp_path: Path, storage: str) -> None:
    from rosbags.rosbag2 import Reader

    summary = kitti_to_bag(drive.path, tmp_path / "bag", storage)
    assert summary.frames == 4 and summary.messages[TOPICS["image"]] == 4 and summary.messages[TOPICS["tf_static"]] == 1
    camera_stamps = read_timestamps(drive.image_dir / "timestamps.txt")
    velo_stamps = read_timestamps(drive.velodyne_dir / "timestamps.txt")
    seen: dict[str, int] = {}
    with Reader(tmp_path / "bag") as reader:
        assert {c.topic for c in reader.connections} == set(TOPICS.values())
        for connection, timestamp, raw in reader.messages():
            msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            index = seen.get(connection.topic, 0)
            seen[connection.topic] = index + 1
            if connection.topic == TOPICS["image"]:
                stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                assert stamp == timestamp == camera_stamps[index] and msg.encoding == "rgb8"
                expected = cv2.imread(str(drive.image_path(f"{index:010d}")))[..., ::-1]
                np.testing.assert_array_equal(np.asarray(msg.data).reshape(msg.height, msg.width, 3), expected)
            elif connection.topic == TOPICS["points"]:
                assert timestamp == velo_stamps[index]
                points = np.frombuffer(np.asarray(msg.data).tobytes(), "<f4").reshape(-1, 4)
                np.testing.assert_array_equal(points, read_velodyne(drive.velodyne_path(f"{index:010d}")))
            elif connection.topic == TOPICS["camera_info"]:
                np.testing.assert_allclose(np.asarray(msg.p).reshape(3, 4), drive.calibration.projection)
                assert (msg.width, msg.height) == (320, 96)
            elif connection.topic == TOPICS["tf_static"]:
                assert [t.child_frame_id for t in msg.transforms] == ["imu_link", "velo_link", "camera_color_left"]
                assert timestamp == min(camera_stamps.min(), velo_stamps.min())  # no later than any sensor message
    assert seen[TOPICS["points"]] == 4 and seen[TOPICS["point_labels"]] == 4 and seen[TOPICS["imu"]] == 4 and seen[TOPICS["tf"]] == 4


def test_mcap_reader_sees_the_same_bag(drive: KittiDrive, tmp_path: Path) -> None:
    reader_module = pytest.importorskip("mcap.reader", reason="the mcap package is not installed")
    kitti_to_bag(drive.path, tmp_path / "bag", "mcap")
    with open(next((tmp_path / "bag").glob("*.mcap")), "rb") as handle:
        reader = reader_module.make_reader(handle)
        summary = reader.get_summary()
        topics = {channel.topic: summary.schemas[channel.schema_id].name for channel in summary.channels.values()}
        counts = summary.statistics.channel_message_counts
        assert topics[TOPICS["points"]] == "sensor_msgs/msg/PointCloud2" and topics[TOPICS["image"]] == "sensor_msgs/msg/Image"
        assert sum(counts.values()) == 1 + 4 * 5 + 4 * 4  # tf_static, 5 camera/lidar topics and 4 OXTS topics per frame
    metadata = (tmp_path / "bag" / "metadata.yaml").read_text()
    assert "storage_identifier: mcap" in metadata and "offered_qos_profiles" in metadata


def _ros_type_hash(msgtype: str) -> str | None:
    """The RIHS01 hash a ROS 2 install records for `pkg/msg/Type` (share/pkg/msg/Type.json), or None."""
    package, _, name = msgtype.split("/")
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        description = Path(prefix) / "share" / package / "msg" / f"{name}.json"
        if description.is_file():
            hashes = json.loads(description.read_text())["type_hashes"]
            return next(h["hash_string"] for h in hashes if h["type_name"] == msgtype)
    return None


def test_bag_metadata_carries_the_type_hashes_ros2_records(drive: KittiDrive, tmp_path: Path) -> None:
    """rosbag2 (Jazzy, metadata version 9) keys topic types by RIHS01 hashes: ours must equal the installed ROS messages'."""
    kitti_to_bag(drive.path, tmp_path / "bag", "mcap")
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] >= 9 and info["storage_identifier"] == "mcap"
    topics = [entry["topic_metadata"] for entry in info["topics_with_message_count"]]
    installed = {t["type"]: _ros_type_hash(t["type"]) for t in topics}
    expected = {msgtype: digest for msgtype, digest in installed.items() if digest}  # tf2_msgs has no wheel
    if "sensor_msgs/msg/Image" not in expected:
        pytest.skip("the ROS 2 sensor_msgs type descriptions (share/sensor_msgs/msg/*.json) are not installed")
    assert {t["type"]: t["type_description_hash"] for t in topics if t["type"] in expected} == expected
    assert {"sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/CameraInfo"} <= expected.keys()


def test_frame_ranges_missing_frames_and_errors(drive: KittiDrive, tmp_path: Path) -> None:
    assert kitti_to_bag(drive.path, tmp_path / "part", frames="1:3").frames == 2
    with pytest.raises(SemsegError, match="exists"):
        kitti_to_bag(drive.path, tmp_path / "part")
    with pytest.raises(SemsegError, match="no frames in that range"):
        kitti_to_bag(drive.path, tmp_path / "none", frames="9:12")
    gap = tmp_path / "gap" / drive.path.parent.name
    import shutil

    shutil.copytree(drive.path.parent, gap)
    gap_drive = gap / drive.path.name
    (gap_drive / "velodyne_points" / "data" / "0000000002.bin").unlink()
    summary = kitti_to_bag(gap_drive, tmp_path / "gapbag")
    assert summary.messages[TOPICS["points"]] == 3 and summary.messages[TOPICS["image"]] == 4


def test_player_replays_with_timing(ros: None, drive: KittiDrive, tmp_path: Path) -> None:
    from geometry_msgs.msg import TwistStamped
    from rclpy.node import Node
    from sensor_msgs.msg import Image, Imu, NavSatFix, PointCloud2

    from semseg_ros.ros.player import BagPlayer

    kitti_to_bag(drive.path, tmp_path / "bag")
    listener = Node("bag_listener")
    images: list[Any] = []
    clouds: list[Any] = []
    oxts: dict[str, list[Any]] = {"imu": [], "gps_fix": [], "gps_vel": []}
    arrivals: list[float] = []
    listener.create_subscription(Image, TOPICS["image"], lambda m: (images.append(m), arrivals.append(time.monotonic())), RELIABLE)
    listener.create_subscription(PointCloud2, TOPICS["points"], clouds.append, RELIABLE)
    for key, kind in (("imu", Imu), ("gps_fix", NavSatFix), ("gps_vel", TwistStamped)):
        listener.create_subscription(kind, TOPICS[key], oxts[key].append, RELIABLE)
    player = BagPlayer(tmp_path / "bag", rate=1.0)
    # tf2_msgs has no pip wheel: /tf and /tf_static play only where a ROS 2 install provides it.
    assert sorted(player.skipped) == [f"{TOPICS[k]} (tf2_msgs/msg/TFMessage)" for k in ("tf", "tf_static")] or not player.skipped
    with spinning(listener, player):
        time.sleep(1.0)  # discovery
        player.start()
        assert wait_for(
            lambda: player.finished.is_set() and len(images) == 4 and len(clouds) == 4 and all(len(v) == 4 for v in oxts.values()),
            timeout=15,
        )
    assert 0.2 < arrivals[-1] - arrivals[0] < 3.0  # 3 frame periods of 0.1 s at rate 1: never faster; slower only under load
    assert images[0].header.stamp.sec > 1_300_000_000 and not player.errors
    assert oxts["imu"][0].header.stamp == images[0].header.stamp and 48 < oxts["gps_fix"][0].latitude < 50
    assert oxts["gps_vel"][0].twist.linear.x == pytest.approx(10.0, abs=0.1)  # the synthetic ego drives at 10 m/s
    player.destroy_node()
    listener.destroy_node()


def test_truncated_bag_plays_what_is_readable(ros: None, drive: KittiDrive, tmp_path: Path) -> None:
    from semseg_ros.ros.player import BagPlayer

    kitti_to_bag(drive.path, tmp_path / "bag", "sqlite3")
    database = next((tmp_path / "bag").glob("*.db3"))
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 3])
    try:
        player = BagPlayer(tmp_path / "bag", rate=100.0)
    except SemsegError as exc:  # the index itself is gone: one clear line
        assert "cannot open the bag" in str(exc)
        return
    player.start()
    assert player.finished.wait(10)
    assert player.errors and "playback stopped after" in player.errors[0]  # what was readable was played
    player.destroy_node()


def test_truncated_mcap_and_unknown_types_play_what_is_readable(ros: None, drive: KittiDrive, tmp_path: Path) -> None:
    """A recorder killed mid-way leaves an mcap file without footer; a bag may hold types we cannot import."""
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    from sensor_msgs.msg import Image

    from semseg_ros.bags import TruncatedMcapReader, open_bag
    from semseg_ros.ros.player import BagPlayer

    kitti_to_bag(drive.path, tmp_path / "bag", "mcap")
    whole = open_bag(tmp_path / "bag")
    recorded_qos = {c.topic: c.ext.offered_qos_profiles[0] for c in whole.connections}
    images_in_bag = sum(1 for c, _, _ in whole.messages() if c.topic == TOPICS["image"])
    kitti_image = next(raw for c, _, raw in whole.messages() if c.topic == TOPICS["image"])
    whole.close()
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: int(mcap.stat().st_size * 0.6)])
    reader = open_bag(tmp_path / "bag")
    assert isinstance(reader, TruncatedMcapReader) and 0 < reader.message_count
    for connection in reader.connections:  # the recorded QoS survives the cut
        (qos,) = connection.ext.offered_qos_profiles
        expected_qos = recorded_qos[connection.topic]
        assert (qos.reliability, qos.durability) == (expected_qos.reliability, expected_qos.durability), connection.topic
    readable_images = sum(1 for c, _, _ in reader.messages() if c.topic == TOPICS["image"])
    assert 0 < readable_images < images_in_bag

    # A bag with a type no installed package provides, next to one that is known.
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg("int32 value", "robot_vendor_msgs/msg/Secret"))
    Secret = store.types["robot_vendor_msgs/msg/Secret"]
    with Writer(tmp_path / "mixed", version=8) as writer:
        secret = writer.add_connection("/secret", "robot_vendor_msgs/msg/Secret", typestore=store)
        camera = writer.add_connection(TOPICS["image"], "sensor_msgs/msg/Image", typestore=store)
        for index in range(3):
            writer.write(secret, index * 100_000_000, store.serialize_cdr(Secret(value=index), Secret.__msgtype__))
            writer.write(camera, index * 100_000_000 + 1, kitti_image)

    listener = Node("truncated_listener")
    images: list[Any] = []
    # best effort: hears the reliable cut bag and the mixed bag, whose publisher offers no recorded QoS
    listener.create_subscription(Image, TOPICS["image"], images.append, qos_profile_sensor_data)
    for bag, expected in ((tmp_path / "bag", readable_images), (tmp_path / "mixed", 3)):
        images.clear()
        player = BagPlayer(bag, rate=5.0, topics=None)
        with spinning(listener, player):
            time.sleep(1.0)
            player.start()
            done = player.finished
            assert wait_for(lambda done=done, expected=expected: done.is_set() and len(images) >= expected, timeout=15), bag
        assert len(images) == expected and not player.errors
        if bag.name == "mixed":
            assert player.skipped == ["/secret (robot_vendor_msgs/msg/Secret)"]
        player.destroy_node()
    listener.destroy_node()


# ---------------------------------------------------------------- lost frames, stamps, OXTS, cut files
def tiny_drive(
    root: Path, count: int, no_file: dict[str, set[int]] | None = None, blank: dict[str, set[int]] | None = None, stamps: bool = True
) -> Path:
    """A small KITTI raw drive written by hand: frame k's image is filled with k, its cloud's x is k, its OXTS
    record sits k metres east. `no_file` drops data files and `blank` blanks timestamp lines, per sensor folder."""
    no_file, blank = no_file or {}, blank or {}
    date_dir = root / writers.DATE
    drive_dir = date_dir / f"{writers.DATE}_drive_0001_sync"
    date_dir.mkdir(parents=True)
    writers.write_raw_calibration(date_dir, 8, 4)
    start = np.eye(4)
    for sensor in ("image_02", "velodyne_points", "oxts"):
        (drive_dir / sensor / "data").mkdir(parents=True)
        for k in range(count):
            if k in no_file.get(sensor, set()):
                continue
            path = drive_dir / sensor / "data" / f"{k:010d}"
            if sensor == "image_02":
                cv2.imwrite(str(path) + ".png", np.full((4, 8, 3), k, np.uint8))
            elif sensor == "velodyne_points":
                np.array([[k, 1.0, 0.5, 0.1], [k, -1.0, 0.5, 0.2]], "<f4").tofile(str(path) + ".bin")
            else:
                pose = np.eye(4)
                pose[0, 3] = k
                (Path(str(path) + ".txt")).write_text(writers.oxts_record(pose, np.array([10.0, 0.0, 0.0]), start))
        if stamps:
            offset = {"image_02": 0.0, "velodyne_points": -0.0011, "oxts": 0.0003}[sensor]
            lines = ["" if k in blank.get(sensor, set()) else writers.kitti_timestamp(0.1 * k + offset) for k in range(count)]
            (drive_dir / sensor / "timestamps.txt").write_text("".join(line + "\n" for line in lines))
    return drive_dir


def _stamp_of_line(sensor: str, index: int) -> int:
    from semseg_ros.data.kitti_raw import parse_timestamp

    return parse_timestamp(writers.kitti_timestamp(0.1 * index + {"image_02": 0.0, "velodyne_points": -0.0011, "oxts": 0.0003}[sensor]))


def _frames_in_bag(bag: Path, first_oxts: int = 0) -> dict[str, list[tuple[int, int, int]]]:
    """Per topic: (frame index read from the content, header stamp, bag timestamp). OXTS poses are
    relative to the drive's first OXTS record, frame `first_oxts`."""
    from rosbags.rosbag2 import Reader

    out: dict[str, list[tuple[int, int, int]]] = {}
    with Reader(bag) as reader:
        for connection, timestamp, raw in reader.messages():
            msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == TOPICS["image"]:
                frame = int(np.asarray(msg.data)[0])
            elif connection.topic == TOPICS["points"]:
                frame = int(np.frombuffer(np.asarray(msg.data).tobytes(), "<f4")[0])
            elif connection.topic == TOPICS["tf"]:
                frame = round(msg.transforms[0].transform.translation.x) + first_oxts
                msg = msg.transforms[0]
            else:
                continue
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            out.setdefault(connection.topic, []).append((frame, stamp, timestamp))
    return out


@pytest.mark.parametrize("moment", ["waiting for subscribers", "after the last message"])
def test_a_context_shut_down_under_the_player_is_a_quiet_stop(tmp_path: Path, moment: str) -> None:
    """Regression: rclpy's signal handler shuts the context down at once, before the runner stops the
    player: its thread then died with a traceback (`RCLError: ... publisher's context is invalid`) in
    the wait for subscribers or for acknowledgements (adversary: 1 in 12 Ctrl-C during those waits)."""
    import rclpy
    from rosutil import isolate_ros_domain

    from semseg_ros.ros.player import BagPlayer

    isolate_ros_domain()
    kitti_to_bag(tiny_drive(tmp_path / "kitti", 3), tmp_path / "bag")
    context, live = rclpy.Context(), rclpy.Context()
    rclpy.init(context=context)
    rclpy.init(context=live)
    failures: list[BaseException | None] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda hook_args: failures.append(hook_args.exc_value)
    try:
        player = BagPlayer(tmp_path / "bag", rate=100.0, context=context)
        if moment == "waiting for subscribers":  # nobody subscribes: the player waits its discovery time (3 s)
            player.start()
            time.sleep(0.3)
            context.try_shutdown()
        else:  # shut down as the last message goes out: publishing stops, the wait for acknowledgements begins
            player.pace = lambda topic: context.try_shutdown() if player.published >= 2 else None
            player.discovery_wait = 0.0
            player.start()
        assert player.finished.wait(10) and not failures, failures
        player.stop()
        assert not player.errors  # a stop, not a fault
        # a fault of the player itself (not a shut-down context) is recorded for the runner's exit status
        faulty = BagPlayer(tmp_path / "bag", rate=100.0, discovery_wait=0.0, context=live)
        faulty._play_once = lambda: (_ for _ in ()).throw(RuntimeError("a bug"))  # type: ignore[method-assign]
        faulty.start()
        assert faulty.finished.wait(10) and not failures, failures  # before: a thread traceback, and exit 0
        with pytest.raises(SemsegError, match=r"the player failed after 0 messages: RuntimeError\('a bug'\)"):
            faulty.raise_errors()
        faulty.destroy_node()
    finally:
        threading.excepthook = previous_hook
        context.try_shutdown()
        live.try_shutdown()


def test_lost_lidar_frames_keep_every_stamp_right_and_are_counted(tmp_path: Path) -> None:
    """Regression: with frames 5 and 6 lost (files gone, timestamp lines blank) frame 5's cloud carried
    frame 7's stamp and two clouds vanished without a word."""
    lost = {5, 6}
    drive = tiny_drive(tmp_path / "kitti", 10, no_file={"velodyne_points": lost}, blank={"velodyne_points": lost})
    for suffix in ("_start", "_end"):
        shutil.copy(drive / "velodyne_points" / "timestamps.txt", drive / "velodyne_points" / f"timestamps{suffix}.txt")
    summary = kitti_to_bag(drive, tmp_path / "bag")
    clouds = _frames_in_bag(tmp_path / "bag")[TOPICS["points"]]
    assert [frame for frame, _, _ in clouds] == [0, 1, 2, 3, 4, 7, 8, 9]
    assert all(stamp == timestamp == _stamp_of_line("velodyne_points", frame) for frame, stamp, timestamp in clouds)
    assert summary.skipped == {"velodyne_points": {"no file and no timestamp": ["0000000005", "0000000006"]}}
    assert summary.skipped_lines() == ["velodyne_points: skipped 2 frames (no file and no timestamp): 0000000005, 0000000006"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_wrong_stamp_and_nothing_silently_lost(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Any pattern of missing files and blank timestamp lines: every message carries its own frame's stamp,
    and every frame of every sensor is either written or listed as skipped."""
    count = data.draw(st.integers(2, 7))
    sensors = ("image_02", "velodyne_points", "oxts")
    subsets = st.sets(st.integers(0, count - 1), max_size=count - 1)
    no_file = {s: data.draw(subsets) for s in sensors}
    blank = {s: data.draw(subsets) for s in sensors}
    root = tmp_path_factory.mktemp("prop")
    drive = tiny_drive(root / "kitti", count, no_file, blank)
    if not any(set(range(count)) - no_file[s] - blank[s] for s in sensors):
        with pytest.raises(SemsegError, match="no frame has both a data file and a timestamp"):
            kitti_to_bag(drive, root / "bag")
        event("refused: no frame with both a file and a stamp")
        return
    summary = kitti_to_bag(drive, root / "bag")
    event("some frames skipped" if summary.skipped else "no frame skipped")
    seen = _frames_in_bag(root / "bag", min(set(range(count)) - no_file["oxts"], default=0))
    for sensor, topic in zip(sensors, (TOPICS["image"], TOPICS["points"], TOPICS["tf"]), strict=True):
        written = seen.get(topic, [])
        assert all(stamp == timestamp == _stamp_of_line(sensor, frame) for frame, stamp, timestamp in written), sensor
        expected = sorted(set(range(count)) - no_file[sensor] - blank[sensor])
        assert [frame for frame, _, _ in written] == expected
        skipped = sorted(int(name) for names in summary.skipped.get(sensor, {}).values() for name in names)
        names_in_drive = set(range(count)) - set.intersection(*(no_file[s] for s in sensors))
        assert sorted(set(expected) | set(skipped)) == sorted(names_in_drive) and not set(expected) & set(skipped)


def test_missing_timestamps_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: a drive without timestamps.txt gave an empty bag (only /tf_static) and exit status 0."""
    from semseg_ros.cli import main

    drive = tiny_drive(tmp_path / "kitti", 3, stamps=False)
    with pytest.raises(SemsegError, match=r"image_02/timestamps\.txt not found.*never invents a stamp"):
        kitti_to_bag(drive, tmp_path / "bag")
    assert not (tmp_path / "bag").exists()
    assert main(["kitti2bag", str(drive), str(tmp_path / "bag2")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "timestamps.txt not found" in err[0]
    assert main(["kitti2bag", str(tiny_drive(tmp_path / "k2", 4, no_file={"oxts": {1}})), str(tmp_path / "bag3")]) == 0
    assert "oxts: skipped 1 frame (no file): 0000000001" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("sensor", "pattern", "topics"),
    [
        ("image_02", "*.png", ("image", "camera_info")),
        ("velodyne_points", "*.bin", ("points",)),
        ("oxts", "*.txt", ("imu", "gps_fix", "gps_vel", "tf")),
    ],
)
def test_a_sensor_folder_without_data_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sensor: str, pattern: str, topics: tuple[str, ...]
) -> None:
    """Regression: a drive whose image_02/data was empty gave a bag without a camera topic and not one word
    (the nodes then wait for frames that never come). The sensor and the topics the bag lacks are named."""
    from semseg_ros.cli import main

    drive = tiny_drive(tmp_path / "kitti", 3, no_file={sensor: {0, 1, 2}})
    summary = kitti_to_bag(drive, tmp_path / "bag")
    lacks = f"no {sensor}/data/{pattern} in the drive: the bag has no {', '.join(TOPICS[k] for k in topics)}"
    assert summary.missing == {sensor: lacks} and not summary.skipped
    assert not set(summary.messages) & {TOPICS[k] for k in topics} and len(summary.messages) >= 2
    assert main(["kitti2bag", str(drive), str(tmp_path / "bag2")]) == 0
    assert capsys.readouterr().err == f"semseg kitti2bag: warning: {sensor}: {lacks}\n"


def test_oxts_poses_match_pykitti_and_the_synthetic_ego_motion(drive: KittiDrive, tmp_path: Path) -> None:
    """/tf world -> base_link is the OXTS pose as pykitti computes it (an independent implementation of the
    devkit's convertOxtsToPose), and the synthetic drive's OXTS follows its ego motion (10 m/s east)."""
    pykitti_utils = pytest.importorskip("pykitti.utils")
    from rosbags.rosbag2 import Reader

    files = sorted(str(p) for p in (drive.path / "oxts" / "data").glob("*.txt"))
    reference = [o.T_w_imu for o in pykitti_utils.load_oxts_packets_and_poses(files)]
    kitti_to_bag(drive.path, tmp_path / "bag")
    poses, imu, fixes = [], [], []
    with Reader(tmp_path / "bag") as reader:
        for connection, _, raw in reader.messages():
            msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == TOPICS["tf"]:
                (transform,) = msg.transforms
                assert (transform.header.frame_id, transform.child_frame_id) == ("world", "base_link")
                q, tr = transform.transform.rotation, transform.transform.translation
                pose = np.eye(4)
                pose[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
                pose[:3, 3] = tr.x, tr.y, tr.z
                poses.append(pose)
            elif connection.topic == TOPICS["imu"]:
                imu.append(msg)
            elif connection.topic == TOPICS["gps_fix"]:
                fixes.append(msg)
    assert len(poses) == len(reference) == 4
    for ours, theirs in zip(poses, reference, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    imu_to_velo = writers.imu_to_velo()
    for k, pose in enumerate(poses):  # T_w_imu = T_w_velo @ T_velo_imu, the lidar moving 10 m/s along x with no rotation
        np.testing.assert_allclose(pose[:3, 3] - poses[0][:3, 3], [10.0 * 0.1 * k, 0.0, 0.0], atol=1e-6)
        np.testing.assert_allclose(pose[:3, :3], imu_to_velo[:3, :3], atol=1e-9)
        q = imu[k].orientation
        np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), pose[:3, :3], atol=1e-9)
        assert imu[k].linear_acceleration.z == pytest.approx(9.81, abs=0.01) and imu[k].header.frame_id == "imu_link"
    assert fixes[0].latitude == pytest.approx(writers.OXTS_ORIGIN[0], abs=1e-9)


def test_drive_without_imu_calibration_skips_oxts_aloud(drive: KittiDrive, tmp_path: Path) -> None:
    copy = tmp_path / "copy" / drive.path.parent.name
    shutil.copytree(drive.path.parent, copy)
    (copy / "calib_imu_to_velo.txt").unlink()
    summary = kitti_to_bag(copy / drive.path.name, tmp_path / "bag")
    assert TOPICS["imu"] not in summary.messages and TOPICS["points"] in summary.messages
    (reason,) = summary.skipped["oxts"]
    assert "calib_imu_to_velo.txt" in reason and len(summary.skipped["oxts"][reason]) == 4


def _mcap_bag(tmp_path: Path) -> tuple[Path, bytes, list[tuple[str, int]]]:
    """A small mcap bag, its bytes and its messages (topic, timestamp) in file order."""
    from semseg_ros.bags import open_bag

    kitti_to_bag(tiny_drive(tmp_path / "kitti", 5), tmp_path / "bag", "mcap")
    reader = open_bag(tmp_path / "bag")
    messages = [(c.topic, stamp) for c, stamp, _ in reader.messages()]
    reader.close()
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    return mcap, mcap.read_bytes(), messages


def test_mcap_cut_in_its_summary_section_plays_everything(ros: None, tmp_path: Path) -> None:
    """Regression: an mcap cut inside its summary section (the last 30 B - 3 kB) made `semseg play` die with a traceback."""
    from semseg_ros.bags import TruncatedMcapReader, open_bag
    from semseg_ros.ros.player import BagPlayer

    mcap, whole, messages = _mcap_bag(tmp_path)
    for cut in (30, 100, 500, 1000, 2000, 3000):
        mcap.write_bytes(whole[:-cut])
        reader = open_bag(mcap.parent)
        assert isinstance(reader, TruncatedMcapReader) and len(reader.connections) == len({t for t, _ in messages})
        assert [(c.topic, stamp) for c, stamp, _ in reader.messages()] == messages, cut
        reader.close()
        player = BagPlayer(mcap.parent, rate=1000.0)
        player.start()
        assert player.finished.wait(10) and not player.errors
        assert player.published == sum(1 for t, _ in messages if t not in ("/tf", "/tf_static")) or player.published == len(messages)
        player.destroy_node()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 1.0))
def test_an_mcap_cut_anywhere_opens_with_what_precedes_the_cut(tmp_path_factory: pytest.TempPathFactory, fraction: float) -> None:
    from semseg_ros.bags import open_bag

    global _CUT_BAG
    if _CUT_BAG is None:
        _CUT_BAG = _mcap_bag(tmp_path_factory.mktemp("cut"))
    mcap, whole, messages = _CUT_BAG
    mcap.write_bytes(whole[: int(len(whole) * fraction)])
    try:
        reader = open_bag(mcap.parent)
    except SemsegError as exc:  # nothing readable: one clear line
        assert "cannot open the bag" in str(exc)
        assert not any(end <= len(whole) * fraction for end in _message_ends(whole))
        event("refused: no channel before the cut")
        return
    read = [(c.topic, stamp) for c, stamp, _ in reader.messages()]
    reader.close()
    assert read == messages[: len(read)]
    assert len(read) == sum(end <= len(whole) * fraction for end in _message_ends(whole))  # every message before the cut
    event("opened: all messages" if len(read) == len(messages) else "opened: the messages before the cut")


_CUT_BAG: tuple[Path, bytes, list[tuple[str, int]]] | None = None


def _message_ends(data: bytes) -> list[int]:
    """File offsets where each Message record of an uncompressed mcap file ends, in file order
    (an independent walk of the MCAP layout: opcode u8, length u64, body; chunks hold records)."""
    ends, pos = [], 8
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        body = pos + 9
        if opcode == 0x05:  # Message
            ends.append(body + length)
        elif opcode == 0x06:  # Chunk: 28 bytes of times, size and CRC, compression string, records length, records
            (name_length,) = struct.unpack_from("<I", data, body + 28)
            assert name_length == 0, "compressed chunk"
            (records_length,) = struct.unpack_from("<Q", data, body + 32)
            inner = body + 40
            while inner < body + 40 + records_length:
                inner_opcode, inner_length = struct.unpack_from("<BQ", data, inner)
                inner += 9 + inner_length
                if inner_opcode == 0x05:
                    ends.append(inner)
        elif opcode == 0x0F:  # DataEnd: the summary follows
            break
        pos = body + length
    return ends


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stamps=st.lists(st.none() | st.integers(0, 10**9 * 3600 * 24 * 365 * 30), max_size=30),
    newline=st.sampled_from(["\n", "\r\n"]),
    trailing=st.sampled_from(["", "\n", "\n\n"]),
)
def test_timestamps_read_back_line_by_line(tmp_path: Path, stamps: list[int | None], newline: str, trailing: str) -> None:
    """Entry i of read_timestamps is line i's stamp to the nanosecond; a blank line (a lost frame) is MISSING_STAMP."""
    from semseg_ros.data.kitti_raw import MISSING_STAMP, parse_timestamp

    lines = ["" if s is None else writers.kitti_timestamp(s / 1e9) for s in stamps]
    path = tmp_path / "timestamps.txt"
    path.write_bytes((newline.join(lines) + (newline if lines else "") + trailing).encode())
    got = read_timestamps(path).tolist()
    while stamps and stamps[-1] is None:
        stamps.pop()  # trailing blank lines name no frame
    assert got == [MISSING_STAMP if s is None else parse_timestamp(writers.kitti_timestamp(s / 1e9)) for s in stamps]
    start = parse_timestamp(writers.kitti_timestamp(0.0))
    assert all(abs(g - (start + s)) <= 1000 for g, s in zip(got, stamps, strict=True) if s is not None)  # float seconds in between


@pytest.mark.parametrize(
    "line",
    [
        "1969-12-31 23:59:58.5",  # before the epoch: a traceback before
        "9999-12-31 00:00:00.0",  # past an int64 of nanoseconds: a traceback before
        "2011-02-30 13:02:25.1",  # no such day: a bag 208 days long before
        "2011-09-26 13:02:25.-5",  # a stamp 50 ms early before
        "2011-09-26 25:61:99.0",
        "\uff12011-09-26 13:02:25.0",  # full-width digit
        "2_11-09-26 13:02:25.0",
    ],
)
def test_impossible_timestamps_are_refused_with_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "timestamps.txt"
    path.write_text(f"2011-09-26 13:02:25.000000000\n{line}\n")
    with pytest.raises(SemsegError, match=r"timestamps.txt:2: '.*'"):
        read_timestamps(path)


def test_oxts_outside_the_globe_and_mismatched_point_labels_are_refused(drive: KittiDrive, tmp_path: Path) -> None:
    from semseg_ros.data.kitti_raw import read_oxts

    record = tmp_path / "oxts.txt"
    values = ["95.0", "8.4"] + ["0.0"] * 28
    record.write_text(" ".join(values) + "\n")
    with pytest.raises(SemsegError, match=r"latitude 95\.0 / longitude 8\.4 outside"):
        read_oxts(record)
    copy = tmp_path / "drive" / drive.path.parent.name
    shutil.copytree(drive.path.parent, copy)
    short = KittiDrive(copy / drive.path.name)
    name = short.frames()[1]
    short.velodyne_path(name).write_bytes(short.velodyne_path(name).read_bytes()[:1600])  # 100 whole points
    with pytest.raises(SemsegError, match=r"point labels for the 100 points"):
        kitti_to_bag(short.path, tmp_path / "bag")
    assert not (tmp_path / "bag").exists()  # no half-written bag left to block the next run


def test_palette_ground_truth_pngs_go_into_the_bag_as_their_indices(drive: KittiDrive, tmp_path: Path) -> None:
    """Found by an adversary: a palette GT PNG went in as 3-channel palette colours labelled mono8."""
    from PIL import Image

    from semseg_ros.bags import open_bag

    copy = tmp_path / "drive" / drive.path.parent.name
    shutil.copytree(drive.path.parent, copy)
    gt_path = copy / drive.path.name / "image_02" / "semantic" / "0000000000.png"
    ids = np.array(Image.open(gt_path))
    palette_png = Image.fromarray(ids, mode="L").convert("P")
    palette_png.putpalette(list(np.random.default_rng(0).integers(0, 255, 768)))
    palette_png.save(gt_path)
    assert Image.open(gt_path).mode == "P"
    kitti_to_bag(copy / drive.path.name, tmp_path / "bag", frames="0:1")
    reader = open_bag(tmp_path / "bag")
    try:
        semantic = [c for c in reader.connections if c.topic == TOPICS["semantic"]]
        (_, _, raw), *_ = list(reader.messages(connections=semantic))
        msg = TYPESTORE.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        assert msg.encoding == "mono8" and len(msg.data) == msg.width * msg.height
        np.testing.assert_array_equal(np.asarray(msg.data).reshape(msg.height, msg.width), ids)
    finally:
        reader.close()
