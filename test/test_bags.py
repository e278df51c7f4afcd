"""kitti2bag output read back with rosbags and the mcap reader; the rclpy player replays it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from rosutil import spinning, wait_for

from semseg_ros.bags import TOPICS, TYPESTORE, kitti_to_bag
from semseg_ros.data.kitti_raw import KittiDrive, read_timestamps, read_velodyne
from semseg_ros.errors import SemsegError
from semseg_ros.synth import writers

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
                assert [t.child_frame_id for t in msg.transforms] == ["velo_link", "camera_color_left"]
    assert seen[TOPICS["points"]] == 4 and seen[TOPICS["point_labels"]] == 4


def test_mcap_reader_sees_the_same_bag(drive: KittiDrive, tmp_path: Path) -> None:
    reader_module = pytest.importorskip("mcap.reader", reason="the mcap package is not installed")
    kitti_to_bag(drive.path, tmp_path / "bag", "mcap")
    with open(next((tmp_path / "bag").glob("*.mcap")), "rb") as handle:
        reader = reader_module.make_reader(handle)
        summary = reader.get_summary()
        topics = {channel.topic: summary.schemas[channel.schema_id].name for channel in summary.channels.values()}
        counts = summary.statistics.channel_message_counts
        assert topics[TOPICS["points"]] == "sensor_msgs/msg/PointCloud2" and topics[TOPICS["image"]] == "sensor_msgs/msg/Image"
        assert sum(counts.values()) == 1 + 4 * 5
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
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from semseg_ros.ros.player import BagPlayer

    kitti_to_bag(drive.path, tmp_path / "bag")
    listener = Node("bag_listener")
    images: list[Any] = []
    clouds: list[Any] = []
    arrivals: list[float] = []
    listener.create_subscription(Image, TOPICS["image"], lambda m: (images.append(m), arrivals.append(time.monotonic())), RELIABLE)
    listener.create_subscription(PointCloud2, TOPICS["points"], clouds.append, RELIABLE)
    player = BagPlayer(tmp_path / "bag", rate=1.0)
    assert player.skipped == [f"{TOPICS['tf_static']} (tf2_msgs/msg/TFMessage)"] or not player.skipped
    with spinning(listener, player):
        time.sleep(1.0)  # discovery
        player.start()
        assert wait_for(lambda: player.finished.is_set() and len(images) == 4 and len(clouds) == 4, timeout=15)
    assert 0.2 < arrivals[-1] - arrivals[0] < 0.6  # 3 frame periods of 0.1 s at rate 1
    assert images[0].header.stamp.sec > 1_300_000_000 and not player.errors
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
