"""KITTI raw drives to ROS 2 bags (sqlite3 or mcap) with rosbags; no ROS install needed.

Topics (kitti2bag names): /kitti/camera_color_left/image_raw (rgb8), .../camera_info (P, K, R, size),
/kitti/velo/pointcloud (x y z intensity float32), /tf_static (base_link -> velo_link ->
camera_color_left, the rectified camera-0 optical frame that P_rect_02 projects from). Synthetic
drives add their ground truth: .../semantic (mono8 Cityscapes label ids) and /kitti/velo/labels
(PointCloud2 x y z float32, label uint16, instance uint16). Stamps come from the timestamps files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from mcap.exceptions import McapError
from mcap.records import Channel as McapChannel
from mcap.records import Message as McapMessage
from mcap.records import Schema as McapSchema
from mcap.stream_reader import StreamReader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from semseg_ros.data.kitti_raw import KittiDrive, read_point_labels, read_timestamps, read_velodyne
from semseg_ros.errors import SemsegError
from semseg_ros.schema import parse_yaml

CAMERA_FRAME = "camera_color_left"
VELO_FRAME = "velo_link"
BASE_FRAME = "base_link"
TOPICS = {
    "image": "/kitti/camera_color_left/image_raw",
    "camera_info": "/kitti/camera_color_left/camera_info",
    "points": "/kitti/velo/pointcloud",
    "semantic": "/kitti/camera_color_left/semantic",
    "point_labels": "/kitti/velo/labels",
    "tf_static": "/tf_static",
}
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def _qos(durability: QosDurability = QosDurability.VOLATILE) -> Qos:
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, durability, zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def _header(stamp_ns: int, frame: str) -> Any:
    t = TYPESTORE.types
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame
    )


def _field(name: str, offset: int, datatype: int) -> Any:
    return TYPESTORE.types["sensor_msgs/msg/PointField"](name=name, offset=offset, datatype=datatype, count=1)


def _transform(stamp_ns: int, parent: str, child: str, matrix: np.ndarray) -> Any:
    t = TYPESTORE.types
    qx, qy, qz, qw = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    translation = t["geometry_msgs/msg/Vector3"](x=float(matrix[0, 3]), y=float(matrix[1, 3]), z=float(matrix[2, 3]))
    rotation = t["geometry_msgs/msg/Quaternion"](x=float(qx), y=float(qy), z=float(qz), w=float(qw))
    return t["geometry_msgs/msg/TransformStamped"](
        header=_header(stamp_ns, parent),
        child_frame_id=child,
        transform=t["geometry_msgs/msg/Transform"](translation=translation, rotation=rotation),
    )


@dataclass
class BagSummary:
    path: Path
    frames: int
    messages: dict[str, int]
    duration_s: float


def _frame_range(names: list[str], frames: str | None) -> list[str]:
    if not frames:
        return names
    try:
        start_text, _, end_text = frames.partition(":")
        start, end = int(start_text or 0), int(end_text) if end_text else len(names)
    except ValueError:
        raise SemsegError(f"--frames {frames!r}: expected a:b frame indices, e.g. 0:50") from None
    chosen = names[start:end]
    if not chosen:
        raise SemsegError(f"--frames {frames}: no frames in that range (the drive has {len(names)})")
    return chosen


def kitti_to_bag(drive_dir: str | Path, out: str | Path, storage: str = "mcap", frames: str | None = None) -> BagSummary:
    """Write the drive as a ROS 2 bag at `out` (a folder, as `ros2 bag record` makes)."""
    drive = KittiDrive(Path(drive_dir))
    out = Path(out)
    if out.exists():
        raise SemsegError(f"{out} exists; choose a new bag folder (ros2 bag never overwrites either)")
    calib = drive.calibration
    image_frames = drive.frames()
    velo_frames = {p.stem for p in (drive.velodyne_dir / "data").glob("*.bin")}
    if not image_frames and not velo_frames:
        raise SemsegError(f"{drive.path}: no image_02/data/*.png and no velodyne_points/data/*.bin")
    names = _frame_range(sorted(set(image_frames) | velo_frames), frames)
    camera_stamps = read_timestamps(drive.image_dir / "timestamps.txt") if (drive.image_dir / "timestamps.txt").is_file() else None
    velo_stamps = read_timestamps(drive.velodyne_dir / "timestamps.txt") if (drive.velodyne_dir / "timestamps.txt").is_file() else None
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
    if plugin is None:
        raise SemsegError(f"--storage {storage}: expected mcap or sqlite3")
    t = TYPESTORE.types
    counts: dict[str, int] = {}
    first = last = None
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        connections: dict[str, Any] = {}

        def write(key: str, msgtype: str, msg: Any, stamp_ns: int, qos: Qos | None = None) -> None:
            nonlocal first, last
            if key not in connections:
                connections[key] = writer.add_connection(TOPICS[key], msgtype, typestore=TYPESTORE, offered_qos_profiles=[qos or _qos()])
            writer.write(connections[key], stamp_ns, bytes(TYPESTORE.serialize_cdr(msg, msgtype)))
            counts[TOPICS[key]] = counts.get(TOPICS[key], 0) + 1
            first = stamp_ns if first is None else min(first, stamp_ns)
            last = stamp_ns if last is None else max(last, stamp_ns)

        start_ns = int(camera_stamps[int(names[0])]) if camera_stamps is not None and int(names[0]) < len(camera_stamps) else 0
        rect = np.eye(4)
        rect[:3, :3] = calib.rectification
        velo_to_camera = rect @ calib.velo_to_cam
        static = t["tf2_msgs/msg/TFMessage"](
            transforms=[
                _transform(
                    start_ns,
                    BASE_FRAME,
                    VELO_FRAME,
                    np.block([[np.eye(3), np.array([[0.0], [0.0], [1.73]])], [np.zeros((1, 3)), np.ones((1, 1))]]),
                ),
                _transform(start_ns, VELO_FRAME, CAMERA_FRAME, np.linalg.inv(velo_to_camera)),
            ]
        )
        write("tf_static", "tf2_msgs/msg/TFMessage", static, start_ns, _qos(QosDurability.TRANSIENT_LOCAL))
        for name in names:
            index = int(name)
            image_path = drive.image_path(name)
            if image_path.is_file() and camera_stamps is not None and index < len(camera_stamps):
                stamp = int(camera_stamps[index])
                for key, msgtype, msg in _camera_messages(drive, name, stamp, calib):
                    write(key, msgtype, msg, stamp)
            velo_path = drive.velodyne_path(name)
            if velo_path.is_file() and velo_stamps is not None and index < len(velo_stamps):
                stamp = int(velo_stamps[index])
                for key, msgtype, msg in _lidar_messages(drive, name, stamp):
                    write(key, msgtype, msg, stamp)
    return BagSummary(out, len(names), counts, ((last or 0) - (first or 0)) / 1e9)


def _camera_messages(drive: KittiDrive, name: str, stamp: int, calib: Any) -> Iterator[tuple[str, str, Any]]:
    t = TYPESTORE.types
    bgr = cv2.imread(str(drive.image_path(name)), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SemsegError(f"{drive.image_path(name)}: unreadable image")
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    height, width = rgb.shape[:2]
    header = _header(stamp, CAMERA_FRAME)
    yield (
        "image",
        "sensor_msgs/msg/Image",
        t["sensor_msgs/msg/Image"](
            header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width, data=rgb.reshape(-1)
        ),
    )
    projection = calib.projection if calib.image_size in (None, (width, height)) else calib.scaled(width, height).projection
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = t["sensor_msgs/msg/CameraInfo"](
        header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5), k=projection[:, :3].ravel(), r=np.eye(3).ravel(),
        p=projection.ravel(), binning_x=0, binning_y=0, roi=roi,
    )  # fmt: skip
    yield "camera_info", "sensor_msgs/msg/CameraInfo", info
    semantic = drive.image_dir / "semantic" / f"{name}.png"
    if semantic.is_file():
        ids = cv2.imread(str(semantic), cv2.IMREAD_UNCHANGED)
        if ids is None:
            raise SemsegError(f"{semantic}: unreadable GT image")
        yield (
            "semantic",
            "sensor_msgs/msg/Image",
            t["sensor_msgs/msg/Image"](
                header=header, height=height, width=width, encoding="mono8", is_bigendian=0, step=width, data=ids.reshape(-1)
            ),
        )


def _lidar_messages(drive: KittiDrive, name: str, stamp: int) -> Iterator[tuple[str, str, Any]]:
    t = TYPESTORE.types
    points = read_velodyne(drive.velodyne_path(name))
    header = _header(stamp, VELO_FRAME)
    fields = [_field(n, 4 * i, 7) for i, n in enumerate(("x", "y", "z", "intensity"))]
    yield "points", "sensor_msgs/msg/PointCloud2", t["sensor_msgs/msg/PointCloud2"](
        header=header, height=1, width=len(points), fields=fields, is_bigendian=False, point_step=16, row_step=16 * len(points),
        data=np.frombuffer(points.astype("<f4").tobytes(), np.uint8), is_dense=True,
    )  # fmt: skip
    label_path = drive.velodyne_dir / "labels" / f"{name}.label"
    if label_path.is_file():
        labels, instances = read_point_labels(label_path)
        packed = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u2"), ("instance", "<u2")])
        packed["x"], packed["y"], packed["z"], packed["label"], packed["instance"] = (
            points[:, 0],
            points[:, 1],
            points[:, 2],
            labels,
            instances,
        )
        label_fields = [*fields[:3], _field("label", 12, 4), _field("instance", 14, 4)]
        yield "point_labels", "sensor_msgs/msg/PointCloud2", t["sensor_msgs/msg/PointCloud2"](
            header=header, height=1, width=len(points), fields=label_fields, is_bigendian=False, point_step=16, row_step=16 * len(points),
            data=np.frombuffer(packed.tobytes(), np.uint8), is_dense=True,
        )  # fmt: skip


@dataclass
class RecordedQos:
    reliability: QosReliability
    durability: QosDurability


@dataclass
class RecoveredExt:
    offered_qos_profiles: list[RecordedQos]


@dataclass
class RecoveredConnection:
    """What the player needs of a connection (rosbags' Connection fields), rebuilt from an mcap Channel."""

    id: int
    topic: str
    msgtype: str
    ext: RecoveredExt


class TruncatedMcapReader:
    """An .mcap bag without its footer (the recorder was killed) read record by record up to the cut.

    rosbags needs the summary at the end of the file; here Schema, Channel and Message records are
    streamed in order, so everything written before the cut is still played. Same interface as the
    parts of rosbags' Reader the player uses: `connections`, `messages(connections)`, `close()`.
    """

    def __init__(self, path: Path):
        self.path = path
        self.connections: list[RecoveredConnection] = []
        self.message_count = 0
        schemas: dict[int, str] = {}
        for record in self._records():
            if isinstance(record, McapSchema):
                schemas[record.id] = record.name
            elif isinstance(record, McapChannel):
                qos_text = record.metadata.get("offered_qos_profiles", "") or "[]"
                recorded = parse_yaml(qos_text, f"{path}: offered_qos_profiles of {record.topic}") or []
                profiles = [_qos_profile(p) for p in recorded if isinstance(p, dict)]
                self.connections.append(
                    RecoveredConnection(record.id, record.topic, schemas.get(record.schema_id, ""), RecoveredExt(profiles))
                )
            elif isinstance(record, McapMessage):
                self.message_count += 1
        if not self.connections:
            raise SemsegError(f"{path}: no channel survives in the truncated mcap file")

    def _records(self) -> Iterator[Any]:
        """Records in file order, stopping quietly where the file breaks off."""
        with open(self.path, "rb") as handle:
            try:
                yield from StreamReader(handle).records
            except (McapError, EOFError, ValueError):
                return

    def messages(self, connections: list[Any] | None = None) -> Iterator[tuple[Any, int, bytes]]:
        wanted = {c.id: c for c in (connections or self.connections)}
        for record in self._records():
            if isinstance(record, McapMessage) and record.channel_id in wanted:
                yield wanted[record.channel_id], record.log_time, record.data

    def close(self) -> None:
        """Nothing stays open between reads."""


def _qos_profile(profile: dict[str, Any]) -> RecordedQos:
    """A recorded QoS profile (names in Jazzy metadata, numbers in older bags) as rosbags enums."""

    def enum(kind: Any, value: Any) -> Any:
        try:
            return kind(value) if isinstance(value, int) else kind[str(value).upper()]
        except (KeyError, ValueError):
            return kind.UNKNOWN

    return RecordedQos(enum(QosReliability, profile.get("reliability")), enum(QosDurability, profile.get("durability")))


def open_bag(path: str | Path) -> Any:
    """A reader over a bag folder: rosbags' Reader, or record-by-record reading of a truncated mcap."""
    path = Path(path)
    if (path / "metadata.yaml").is_file():  # bounded before rosbags parses it
        parse_yaml((path / "metadata.yaml").read_text(encoding="utf-8", errors="replace"), str(path / "metadata.yaml"))
    try:
        reader = Reader(path)
        reader.open()
        return reader
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        files = sorted(path.glob("*.mcap")) if path.is_dir() else [path] if path.suffix == ".mcap" else []
        if len(files) == 1 and "magic" in reason.lower():
            return TruncatedMcapReader(files[0])
        raise SemsegError(f"{path}: cannot open the bag ({reason})") from None
