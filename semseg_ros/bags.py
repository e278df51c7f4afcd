"""KITTI raw drives to ROS 2 bags (sqlite3 or mcap) with rosbags; no ROS install needed.

Topics (kitti2bag names): /kitti/camera_color_left/image_raw (rgb8), .../camera_info (P, K, R, size),
/kitti/velo/pointcloud (x y z intensity float32), and from the OXTS GPS/IMU of a raw drive
/kitti/oxts/imu (sensor_msgs/Imu), /kitti/oxts/gps/fix (NavSatFix), /kitti/oxts/gps/vel
(TwistStamped) and /tf (world -> base_link, the OXTS pose). /tf_static holds base_link -> imu_link
(identity: base_link is the OXTS unit, as in kitti2bag) -> velo_link (calib_imu_to_velo.txt) ->
camera_color_left (the rectified camera-0 optical frame that P_rect_02 projects from); without
calib_imu_to_velo.txt, base_link sits 1.73 m under velo_link and no OXTS is written. Synthetic
drives add their ground truth: .../semantic (mono8 Cityscapes label ids) and /kitti/velo/labels
(PointCloud2 x y z float32, label uint16, instance uint16).

Stamps: every message carries the stamp of its own frame's line in its sensor's timestamps.txt,
looked up by frame index; frames without a file or without a stamp (KITTI leaves lost frames'
lines blank) are skipped and listed in BagSummary.skipped, and a sensor folder without its
timestamps.txt is refused: no stamp is ever made up. /tf_static carries the earliest stamp.
"""

from __future__ import annotations

import io
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mcap.exceptions import McapError
from mcap.opcode import Opcode as McapOpcode
from mcap.records import Channel as McapChannel
from mcap.records import Chunk as McapChunk
from mcap.records import Message as McapMessage
from mcap.records import Schema as McapSchema
from mcap.stream_reader import StreamReader, breakup_chunk
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from semseg_ros.calibration import RAW_IMU_TO_VELO, read_rigid_transform
from semseg_ros.data.images import read_label_png, read_rgb
from semseg_ros.data.kitti_raw import (
    MISSING_STAMP,
    KittiDrive,
    oxts_pose,
    read_oxts,
    read_point_labels,
    read_timestamps,
    read_velodyne,
)
from semseg_ros.errors import SemsegError
from semseg_ros.schema import parse_yaml
from semseg_ros.topics import TOPICS

CAMERA_FRAME = "camera_color_left"
VELO_FRAME = "velo_link"
BASE_FRAME = "base_link"
IMU_FRAME = "imu_link"
WORLD_FRAME = "world"
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


def _vector(x: float, y: float, z: float) -> Any:
    return TYPESTORE.types["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))


def _quaternion(rotation: np.ndarray) -> Any:
    qx, qy, qz, qw = Rotation.from_matrix(rotation).as_quat()
    return TYPESTORE.types["geometry_msgs/msg/Quaternion"](x=float(qx), y=float(qy), z=float(qz), w=float(qw))


def _transform(stamp_ns: int, parent: str, child: str, matrix: np.ndarray) -> Any:
    t = TYPESTORE.types
    return t["geometry_msgs/msg/TransformStamped"](
        header=_header(stamp_ns, parent),
        child_frame_id=child,
        transform=t["geometry_msgs/msg/Transform"](translation=_vector(*matrix[:3, 3]), rotation=_quaternion(matrix[:3, :3])),
    )


@dataclass
class BagSummary:
    """What kitti_to_bag wrote: frames considered, messages per topic, and the frames it skipped.

    skipped: sensor folder -> reason -> frame names, e.g. {"velodyne_points": {"no file": ["0000000005"]}}.
    missing: sensor folder without any data -> what the bag lacks for it.
    """

    path: Path
    frames: int
    messages: dict[str, int]
    duration_s: float
    skipped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def skipped_lines(self) -> list[str]:
        """One line per missing sensor, then one per sensor and reason of skipped frames, for the user."""
        lines = [f"{sensor}: {what}" for sensor, what in self.missing.items()]
        for sensor, reasons in self.skipped.items():
            for reason, names in reasons.items():
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                lines.append(f"{sensor}: skipped {len(names)} frame{'s' * (len(names) != 1)} ({reason}): {shown}")
        return lines


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


@dataclass
class _Sensor:
    folder: Path
    files: set[str]  # frame names with a data file
    path: Callable[[str], Path]


def _sensors(drive: KittiDrive) -> tuple[dict[str, _Sensor], dict[str, str]]:
    """The sensor folders of the drive that hold data (camera, lidar and OXTS), and for each of the
    others what the bag will lack, e.g. "no image_02/data/*.png in the drive: the bag has no /kitti/...".
    """
    found, missing = {}, {}
    for folder, pattern, path, keys in (
        (drive.image_dir, "*.png", drive.image_path, ("image", "camera_info")),
        (drive.velodyne_dir, "*.bin", drive.velodyne_path, ("points",)),
        (drive.oxts_dir, "*.txt", drive.oxts_path, ("imu", "gps_fix", "gps_vel", "tf")),
    ):
        files = {p.stem for p in (folder / "data").glob(pattern) if p.stem.isdigit()}
        if files:
            found[folder.name] = _Sensor(folder, files, path)
        else:
            missing[folder.name] = f"no {folder.name}/data/{pattern} in the drive: the bag has no {', '.join(TOPICS[k] for k in keys)}"
    return found, missing


def kitti_to_bag(drive_dir: str | Path, out: str | Path, storage: str = "mcap", frames: str | None = None) -> BagSummary:
    """Write the drive as a ROS 2 bag at `out` (a folder, as `ros2 bag record` makes).

    `frames` "a:b" picks frames by position in the drive. A sensor folder without data (camera, lidar or
    OXTS) is named in BagSummary.missing with the topics the bag lacks. Raises SemsegError (one line with the fix)
    when the drive has no data, a sensor folder lacks its timestamps.txt, or `out` exists.
    """
    drive = KittiDrive(Path(drive_dir))
    out = Path(out)
    if out.exists():
        raise SemsegError(f"{out} exists; choose a new bag folder (ros2 bag never overwrites either)")
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
    if plugin is None:
        raise SemsegError(f"--storage {storage}: expected mcap or sqlite3")
    calib = drive.calibration
    sensors, missing = _sensors(drive)
    if drive.image_dir.name not in sensors and drive.velodyne_dir.name not in sensors:
        raise SemsegError(f"{drive.path}: no image_02/data/*.png and no velodyne_points/data/*.bin")
    names = _frame_range(sorted(set().union(*(s.files for s in sensors.values()))), frames)
    skipped: dict[str, dict[str, list[str]]] = {}
    imu_calib = drive.path.parent / RAW_IMU_TO_VELO
    oxts = sensors.get(drive.oxts_dir.name)
    if oxts is not None and not imu_calib.is_file():
        skipped[drive.oxts_dir.name] = {f"no {imu_calib} to place the OXTS unit": sorted(oxts.files & set(names))}
        del sensors[drive.oxts_dir.name]
        oxts = None

    plan: list[tuple[int, int, str, str]] = []  # (stamp, sensor order, sensor, frame name), written in stamp order
    for order, (sensor, entry) in enumerate(sensors.items()):
        stamps_path = entry.folder / "timestamps.txt"
        if not stamps_path.is_file():
            raise SemsegError(
                f"{stamps_path} not found: every KITTI raw sensor folder has one (restore it from the drive's archive); "
                "kitti2bag never invents a stamp"
            )
        stamps = read_timestamps(stamps_path)
        for name in names:
            index = int(name)
            stamp = int(stamps[index]) if index < len(stamps) else MISSING_STAMP
            if name in entry.files and stamp != MISSING_STAMP:
                plan.append((stamp, order, sensor, name))
                continue
            reason = "no timestamp" if name in entry.files else "no file" if stamp != MISSING_STAMP else "no file and no timestamp"
            skipped.setdefault(sensor, {}).setdefault(reason, []).append(name)
    if not plan:
        raise SemsegError(f"{drive.path}: no frame has both a data file and a timestamp")
    plan.sort()
    first_oxts = read_oxts(drive.oxts_path(min(oxts.files))) if oxts is not None else None

    t = TYPESTORE.types
    counts: dict[str, int] = {}
    try:
        with Writer(out, version=9, storage_plugin=plugin) as writer:
            connections: dict[str, Any] = {}

            def write(key: str, msgtype: str, msg: Any, stamp_ns: int, qos: Qos | None = None) -> None:
                if key not in connections:
                    connections[key] = writer.add_connection(
                        TOPICS[key], msgtype, typestore=TYPESTORE, offered_qos_profiles=[qos or _qos()]
                    )
                writer.write(connections[key], stamp_ns, bytes(TYPESTORE.serialize_cdr(msg, msgtype)))
                counts[TOPICS[key]] = counts.get(TOPICS[key], 0) + 1

            start_ns = plan[0][0]
            rect = np.eye(4)
            rect[:3, :3] = calib.rectification
            camera = _transform(start_ns, VELO_FRAME, CAMERA_FRAME, np.linalg.inv(rect @ calib.velo_to_cam))
            if imu_calib.is_file():
                imu_to_velo = read_rigid_transform(imu_calib)
                transforms = [
                    _transform(start_ns, BASE_FRAME, IMU_FRAME, np.eye(4)),
                    _transform(start_ns, IMU_FRAME, VELO_FRAME, np.linalg.inv(imu_to_velo)),
                    camera,
                ]
            else:
                nominal = np.eye(4)
                nominal[2, 3] = 1.73  # the HDL-64E above the ground
                transforms = [_transform(start_ns, BASE_FRAME, VELO_FRAME, nominal), camera]
            static = t["tf2_msgs/msg/TFMessage"](transforms=transforms)
            write("tf_static", "tf2_msgs/msg/TFMessage", static, start_ns, _qos(QosDurability.TRANSIENT_LOCAL))
            for stamp, _, sensor, name in plan:
                if sensor == drive.image_dir.name:
                    messages = _camera_messages(drive, name, stamp, calib)
                elif sensor == drive.velodyne_dir.name:
                    messages = _lidar_messages(drive, name, stamp)
                else:
                    assert first_oxts is not None
                    messages = _oxts_messages(read_oxts(drive.oxts_path(name)), first_oxts, stamp)
                for key, msgtype, msg in messages:
                    write(key, msgtype, msg, stamp)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written bag: the same command can simply be run again
        raise
    return BagSummary(out, len(names), counts, (plan[-1][0] - plan[0][0]) / 1e9, skipped, missing)


def _oxts_messages(record: dict[str, float], first: dict[str, float], stamp: int) -> Iterator[tuple[str, str, Any]]:
    """Imu, NavSatFix, TwistStamped and the world -> base_link pose of one OXTS record, as kitti2bag writes them."""
    t = TYPESTORE.types
    r = record
    header = _header(stamp, IMU_FRAME)
    pose = oxts_pose(record, first)
    zeros = np.zeros(9)  # covariance unknown
    yield "imu", "sensor_msgs/msg/Imu", t["sensor_msgs/msg/Imu"](
        header=header, orientation=_quaternion(pose[:3, :3]), orientation_covariance=zeros,
        angular_velocity=_vector(r["wf"], r["wl"], r["wu"]), angular_velocity_covariance=zeros,
        linear_acceleration=_vector(r["af"], r["al"], r["au"]), linear_acceleration_covariance=zeros,
    )  # fmt: skip
    status = t["sensor_msgs/msg/NavSatStatus"](status=0, service=1)  # STATUS_FIX, SERVICE_GPS
    variance = r["pos_accuracy"] ** 2
    yield "gps_fix", "sensor_msgs/msg/NavSatFix", t["sensor_msgs/msg/NavSatFix"](
        header=header, status=status, latitude=r["lat"], longitude=r["lon"], altitude=r["alt"],
        position_covariance=np.diag([variance, variance, variance]).ravel(), position_covariance_type=1,  # APPROXIMATED
    )  # fmt: skip
    twist = t["geometry_msgs/msg/Twist"](linear=_vector(r["vf"], r["vl"], r["vu"]), angular=_vector(r["wf"], r["wl"], r["wu"]))
    yield "gps_vel", "geometry_msgs/msg/TwistStamped", t["geometry_msgs/msg/TwistStamped"](header=header, twist=twist)
    yield "tf", "tf2_msgs/msg/TFMessage", t["tf2_msgs/msg/TFMessage"](transforms=[_transform(stamp, WORLD_FRAME, BASE_FRAME, pose)])


def _camera_messages(drive: KittiDrive, name: str, stamp: int, calib: Any) -> Iterator[tuple[str, str, Any]]:
    t = TYPESTORE.types
    rgb = read_rgb(drive.image_path(name))  # header size checked before decoding
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
        ids = read_label_png(semantic)  # every PNG form the official evaluator reads (palette: its indices)
        if ids.shape != (height, width):
            raise SemsegError(f"{semantic}: GT size {ids.shape[1]}x{ids.shape[0]} differs from the image's {width}x{height}")
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
        if len(labels) != len(points):
            raise SemsegError(f"{label_path}: {len(labels)} point labels for the {len(points)} points of {drive.velodyne_path(name)}")
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
    """An .mcap bag cut short (a killed recorder, a partial copy) read record by record up to the cut.

    rosbags needs the summary at the end of the file; here Schema, Channel and Message records are
    streamed in order, so everything written before the cut is still played, wherever the cut falls
    (in a message, a chunk or the summary section, whose repeated Channel records are ignored). Same
    interface as the parts of rosbags' Reader the player uses: `connections`, `messages(connections)`,
    `close()`. Raises SemsegError when no channel survives.
    """

    def __init__(self, path: Path):
        self.path = path
        self.connections: list[RecoveredConnection] = []
        self.message_count = 0
        schemas: dict[int, str] = {}
        for record in self._records():
            if isinstance(record, McapSchema):
                schemas[record.id] = record.name
            elif isinstance(record, McapChannel) and record.id not in {c.id for c in self.connections}:
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
        """Records in file order, stopping quietly where the file breaks off.

        A cut inside an uncompressed chunk (rosbags' default) still yields the chunk's complete records
        before the cut; a compressed chunk cannot be read in part and ends the reading where it starts.
        """
        with open(self.path, "rb") as handle:
            end = 0  # where the last complete top-level record ends
            try:
                for record in StreamReader(handle, emit_chunks=True).records:
                    if isinstance(record, McapChunk):
                        yield from breakup_chunk(record)
                    else:
                        yield record
                    end = handle.tell()
                return
            except (McapError, EOFError, ValueError, struct.error, RuntimeError):  # the cut: a record broken off
                pass
            if end:
                handle.seek(end)
                yield from _partial_chunk_records(handle.read(_MAX_PARTIAL_CHUNK))

    def messages(self, connections: list[Any] | None = None) -> Iterator[tuple[Any, int, bytes]]:
        wanted = {c.id: c for c in (connections or self.connections)}
        for record in self._records():
            if isinstance(record, McapMessage) and record.channel_id in wanted:
                yield wanted[record.channel_id], record.log_time, record.data

    def close(self) -> None:
        """Nothing stays open between reads."""


_MAX_PARTIAL_CHUNK = 1 << 30  # bytes read of a chunk cut short (rosbags writes chunks of a few MB)


def _partial_chunk_records(data: bytes) -> Iterator[Any]:
    """The complete records inside a chunk record cut short: `data` starts at the chunk's opcode.

    MCAP chunk layout: opcode u8, length u64, message start/end time u64 x2, uncompressed size u64,
    uncompressed CRC u32, compression (u32 length + UTF-8), records length u64, then the records.
    """
    fixed = 9 + 8 + 8 + 8 + 4
    if len(data) < fixed + 4 or data[0] != McapOpcode.CHUNK:
        return
    (name_length,) = struct.unpack_from("<I", data, fixed)
    start = fixed + 4 + name_length + 8
    if len(data) < start or data[fixed + 4 : fixed + 4 + name_length] != b"":
        return  # a compressed chunk cannot be read in part
    try:
        yield from StreamReader(io.BytesIO(data[start:]), skip_magic=True).records
    except (McapError, EOFError, ValueError, struct.error, RuntimeError):
        return


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
        if len(files) == 1:  # a cut mcap file: rosbags needs its summary, record-by-record reading does not
            try:
                return TruncatedMcapReader(files[0])
            except SemsegError:
                pass
        raise SemsegError(f"{path}: cannot open the bag ({reason})") from None
