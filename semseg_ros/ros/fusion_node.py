"""fusion_node: label every lidar point from the camera mask and publish clusters as priors.

Pairs `points` (PointCloud2) with `mask` (mono8 class ids from segmentation_node) by header stamp,
projects the points through the calibration, labels them (occlusion-aware) and clusters object
classes. Publishes `labelled_points` (x y z intensity rgb cluster label [confidence], lidar frame,
the cloud's stamp), `clusters` (MarkerArray) and /diagnostics.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from semseg_ros.calibration import Calibration, rigid_from_pose
from semseg_ros.errors import CalibrationError, SemsegError
from semseg_ros.fusion.cluster import ClassRule, Cluster, ClusterSettings, cluster_points
from semseg_ros.fusion.label_points import label_points
from semseg_ros.labels import LABEL_SETS, get_label_set, palette_array
from semseg_ros.node_params import FUSION_NODE, FusionConfig, load_json, parse_class_names, parse_cluster_rules, parse_colors
from semseg_ros.ros import params as ros_params
from semseg_ros.ros.conversions import mask_from_image
from semseg_ros.ros.diagnostics import diagnostics_message, latency_values
from semseg_ros.ros.guard import guarded, guarded_parameters, shutting_down
from semseg_ros.ros.params import qos
from semseg_ros.ros.pointcloud import labelled_cloud, read_points
from semseg_ros.ros.sync import ApproximateSync

STAGES = ("decode", "label", "cluster", "publish", "total")
DEFAULT_LABEL_SET = "cityscapes19"  # the classes assumed until the labels topic of segmentation_node arrives


@dataclass
class FusionStats:
    fused: int = 0  # clouds labelled and published
    rejected_cloud: int = 0  # unreadable PointCloud2
    rejected_mask: int = 0  # unreadable mask image
    rejected_labels: int = 0  # malformed `labels` message
    rejected_parameters: int = 0  # parameter changes refused
    callback_errors: int = 0  # exceptions caught around callbacks (a bug or an input no check foresaw)
    no_calibration: int = 0  # clouds skipped while waiting for camera_info (or tf)
    bad_camera_info: int = 0  # camera_info messages that give no usable calibration
    failed: int = 0  # fusion errors
    latency: dict[str, deque[float]] = field(default_factory=lambda: {s: deque(maxlen=200) for s in STAGES})  # seconds per stage

    def counts(self) -> dict[str, int]:
        """The counters by name (every field but latency), in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latency"}


def cluster_settings(config: FusionConfig, classes: tuple[str, ...], strict: str | None = None) -> tuple[ClusterSettings, list[str]]:
    """The clustering rules the parameters describe, for a label set's class names (matched in any case),
    and the names in `cluster_classes` / `cluster_rules` that no known label set has (skipped, worth a
    warning). Names of other label sets' classes (the defaults list Cityscapes' and CamVid's objects) are
    skipped quietly. `strict` names the parameter being changed live: names no label set has (typos) are a
    SemsegError listing the classes; another label set's names pass, so the shipped list (Cityscapes' and
    CamVid's objects) and a `ros2 param dump` of it can be set back."""
    try:
        overrides = {name.lower(): rule for name, rule in parse_cluster_rules(config.cluster_rules).items()}
        names = [name.lower() for name in parse_class_names(config.cluster_classes)]
    except SemsegError as exc:
        raise SemsegError(f"cluster_rules: {exc}") from None
    own = [c.lower() for c in classes]
    known = {c.lower() for label_set in LABEL_SETS.values() for c in label_set.classes} | set(own)
    unknown = list(dict.fromkeys(name for name in [*names, *overrides] if name not in known))
    refused = unknown if strict else []
    if refused:
        raise SemsegError(f"unknown class {', '.join(dict.fromkeys(refused))}; the label set has {', '.join(classes)}")
    rules = {}
    for name in names:
        if name in own:
            rule = overrides.get(name, {})
            rules[own.index(name)] = ClassRule(
                float(rule.get("radius", config.cluster_radius)), int(rule.get("min_points", config.cluster_min_points))
            )
    return ClusterSettings(rules, config.voxel_size), unknown


def parse_labels(text: str) -> tuple[tuple[str, ...], list[tuple[int, int, int]]]:
    """The `labels` message of segmentation_node: JSON {"classes": [1-255 names], "colors": [[r, g, b] per
    class, 0-255]} (at most 64 KiB). Returns (classes, colours); SemsegError says what is wrong."""
    data = load_json(text)
    if not isinstance(data, dict):
        raise SemsegError('expected a JSON object {"classes": [...], "colors": [...]}')
    classes = data.get("classes")
    if not isinstance(classes, list) or not 1 <= len(classes) <= 255 or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in classes):
        raise SemsegError("classes: expected a list of 1-255 names (1-64 characters)")
    colors = parse_colors(data.get("colors"), "colors")
    if len(colors) < len(classes):
        raise SemsegError(f"colors: {len(colors)} colours for {len(classes)} classes")
    return tuple(classes), colors


def yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


class FusionNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__(FUSION_NODE, **kwargs)
        self.config = ros_params.declare(self, FusionConfig)
        c = self.config
        self.calibration_source = c.calibration()
        self.calibration: Calibration | None = self.calibration_source.calibration()  # None until camera_info
        labels = get_label_set(DEFAULT_LABEL_SET)
        self.classes: tuple[str, ...] = labels.classes
        self.palette = palette_array(labels.colors)
        self.labels_received = False  # until then, self.classes are the default label set's
        self.stats = FusionStats()
        self.distortion = "none"  # whether camera_info's D is applied: on /diagnostics
        self.clustering = self._cluster_settings()
        self.add_on_set_parameters_callback(guarded_parameters(self, self._on_set_parameters, self._count))
        self.sync = ApproximateSync(self._fuse, ("points", "mask"), slop=c.slop, queue_size=c.queue_size)
        self.confidences: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.lock = threading.Lock()

        self.cloud_pub = self.create_publisher(PointCloud2, "labelled_points", 2)
        self.marker_pub = self.create_publisher(MarkerArray, "clusters", 2)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        points_qos, mask_qos = qos(c.points_reliability, c.points_depth), qos(c.mask_reliability, c.mask_depth)

        def subscribe(kind: Any, topic: str, callback: Any, profile: QoSProfile) -> None:
            self.create_subscription(kind, topic, guarded(self, callback, f"{topic} callback failed", self._count), profile)

        subscribe(PointCloud2, "points", lambda m: self.sync.add("points", m), points_qos)
        subscribe(Image, "mask", lambda m: self.sync.add("mask", m), mask_qos)
        # latched by segmentation_node: reliable, transient local, so a late subscriber gets the last one
        subscribe(String, "labels", self._on_labels, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        if c.use_confidence:
            subscribe(Image, "confidence", self._on_confidence, mask_qos)
        if not self.calibration_source.from_files:
            subscribe(CameraInfo, "camera_info", self._on_camera_info, qos(c.camera_info_reliability, c.camera_info_depth))
        self.tf_buffer = self._tf_buffer() if self.calibration_source.extrinsic_from_tf else None
        self._window = (time.monotonic(), 0)
        # a steady clock: /diagnostics keeps coming while a bag (use_sim_time) is paused or has ended
        self.create_timer(
            c.diagnostics_period,
            guarded(self, self._publish_diagnostics, "diagnostics failed", self._count),
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        where = "waiting for camera_info" if self.calibration is None else f"calibration {c.calibration_source}"
        waiting = self._cluster_classes_not_in_label_set()
        self.get_logger().info(
            f"ready: {where}, slop {c.slop} s, clustering {[self.classes[i] for i in self.clustering.rules]} of {DEFAULT_LABEL_SET}, "
            f"the classes assumed until the labels topic arrives"
            + (f" (then also {', '.join(waiting)} if it names them)" if waiting else "")
        )

    # ------------------------------------------------------------ calibration
    def _tf_buffer(self) -> Any:
        try:
            import tf2_ros
        except ImportError:
            raise SemsegError(
                "calibration_source camera_info_tf needs tf2_ros (a full ROS 2 install); use camera_info with lidar_to_camera"
            ) from None
        buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(buffer, self)
        return buffer

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._note_distortion(msg)
        if self.calibration_source.extrinsic_from_tf:
            self._camera_info_tf = msg  # the extrinsic comes from TF, per cloud
            return
        try:
            self.calibration = self.calibration_source.calibration(msg)
        except CalibrationError as exc:
            self.stats.bad_camera_info += 1
            self.get_logger().warning(f"unusable camera_info: {exc}", throttle_duration_sec=5.0)

    def _note_distortion(self, msg: CameraInfo) -> None:
        """Say (once per change, and on /diagnostics) whether the camera_info's D is applied or not."""
        distorted = any(float(v) != 0.0 for v in msg.d) or msg.distortion_model == "equidistant"  # fisheye even with D = 0
        if not distorted:
            note = "none"
        elif self.config.mask_image == "raw":
            note = f"applied ({msg.distortion_model})"
        else:
            note = "not applied: masks of the rectified image (mask_image: rectified) are projected with P"
        if note != self.distortion:
            self.distortion = note
            if distorted and self.config.mask_image != "raw":
                self.get_logger().warning(
                    f"camera_info describes a distorted ({msg.distortion_model}) lens; {note}. "
                    "Set mask_image: raw if the masks come from the unrectified image"
                )

    def _calibration_for(self, cloud: PointCloud2) -> Calibration | None:
        if not self.calibration_source.extrinsic_from_tf:
            return self.calibration
        info = getattr(self, "_camera_info_tf", None)
        if info is None or self.tf_buffer is None:
            return None
        transform = self.tf_buffer.lookup_transform(info.header.frame_id, cloud.header.frame_id, cloud.header.stamp).transform
        t, q = transform.translation, transform.rotation
        return self.calibration_source.calibration(info, rigid_from_pose((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)))

    # ------------------------------------------------------------ inputs
    def _count(self, what: str) -> None:
        if what == "rejected_parameters":
            self.stats.rejected_parameters += 1
        else:
            self.stats.callback_errors += 1

    def _cluster_classes_not_in_label_set(self) -> list[str]:
        """Names in `cluster_classes` that the current label set lacks (matched in any case), as written."""
        own = {name.lower() for name in self.classes}
        return [name for name in parse_class_names(self.config.cluster_classes) if name.lower() not in own]

    def _cluster_settings(self) -> ClusterSettings:
        """The clustering for the current classes; names no label set has are warned about (not throttled:
        this runs at start, when the labels change and on a parameter change, never per frame)."""
        settings, unknown = cluster_settings(self.config, self.classes)
        if unknown and self.labels_received:
            self.get_logger().warning(f"not clustering {', '.join(unknown)}: not in the label set ({', '.join(self.classes)})")
        elif unknown:  # a custom model's classes: the labels topic may name them
            self.get_logger().warning(
                f"not clustering {', '.join(unknown)} unless the labels topic names it: no built-in label set has it "
                f"(until labels arrive, the classes are {DEFAULT_LABEL_SET}'s)"
            )
        return settings

    def _on_labels(self, msg: String) -> None:
        before = [self.classes[i] for i in self.clustering.rules]
        try:
            classes, colors = parse_labels(msg.data)
        except SemsegError as exc:
            self.stats.rejected_labels += 1
            self.get_logger().warning(f"ignoring malformed labels message: {exc}", throttle_duration_sec=5.0)
            return
        self.palette = palette_array(colors)
        if classes == self.classes and self.labels_received:  # the same labels again (each segmentation node start latches them)
            return
        self.classes, self.labels_received = classes, True
        self.clustering = self._cluster_settings()
        clustered = [self.classes[i] for i in self.clustering.rules]
        if clustered != before:  # the ready line named the default label set's classes
            self.get_logger().info(f"labels from the segmentation node: {len(self.classes)} classes, clustering {clustered}")

    def _on_confidence(self, msg: Image) -> None:
        with self.lock:
            self.confidences[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
            while len(self.confidences) > self.config.queue_size:
                self.confidences.popitem(last=False)

    def _on_set_parameters(self, updates: list[Parameter]) -> Any:
        def extra(update: Parameter) -> str | None:
            if update.name in ("cluster_rules", "cluster_classes"):
                try:
                    cluster_settings(self.config.updated({update.name: update.value}), self.classes, strict=update.name)
                except SemsegError as exc:
                    return f"{update.name}: {exc}"
            return None

        result, self.config = ros_params.apply_update(self.config, updates, extra)
        if result.successful:
            self.clustering = self._cluster_settings()
            self.sync.slop = self.config.slop
            lacking = self._cluster_classes_not_in_label_set()
            if lacking and any(u.name == "cluster_classes" for u in updates):  # rclpy drops a successful result's reason
                self.get_logger().warning(f"not clustering {', '.join(lacking)}: not in the label set ({', '.join(self.classes)})")
        return result

    # ------------------------------------------------------------ fusion
    def _fuse(self, cloud: PointCloud2, mask_msg: Image) -> None:
        try:
            self._fuse_pair(cloud, mask_msg)
        except Exception as exc:  # a callback must never take the node down
            if shutting_down(self):
                return  # publishers are gone: nothing left to do, nothing to report
            self.stats.failed += 1
            self.get_logger().error(f"fusion failed: {exc!r}", throttle_duration_sec=5.0)

    def _fuse_pair(self, cloud: PointCloud2, mask_msg: Image) -> None:
        start = time.perf_counter()
        try:
            xyz, intensity, _ = read_points(cloud)
        except SemsegError as exc:
            self.stats.rejected_cloud += 1
            self.get_logger().warning(f"rejected cloud: {exc}", throttle_duration_sec=5.0)
            return
        try:
            mask = mask_from_image(mask_msg)
        except SemsegError as exc:
            self.stats.rejected_mask += 1
            self.get_logger().warning(f"rejected mask: {exc}", throttle_duration_sec=5.0)
            return
        calibration = self._calibration_for(cloud)
        if calibration is None:
            self.stats.no_calibration += 1
            self.get_logger().warning("no calibration yet (waiting for camera_info); cloud skipped", throttle_duration_sec=5.0)
            return
        confidence = None
        if self.config.use_confidence:
            with self.lock:
                conf_msg = self.confidences.pop((mask_msg.header.stamp.sec, mask_msg.header.stamp.nanosec), None)
            if conf_msg is not None:
                confidence = mask_from_image(conf_msg)
        decoded = time.perf_counter()
        labelled = label_points(xyz, mask, calibration, self.config.fusion_settings(), confidence)
        labelled_at = time.perf_counter()
        clusters, ids = cluster_points(xyz, labelled.labels, self.clustering)
        clustered = time.perf_counter()
        keep = labelled.labels != 255 if self.config.drop_unlabelled else slice(None)
        point_confidence = None if labelled.confidence is None else labelled.confidence[keep]
        out = labelled_cloud(
            PointCloud2(),
            cloud.header,
            xyz[keep],
            None if intensity is None else intensity[keep],
            labelled.labels[keep],
            self.palette[labelled.labels[keep]],
            ids[keep],
            point_confidence,
        )
        self.cloud_pub.publish(out)
        if self.config.publish_markers:
            self.marker_pub.publish(self._markers(cloud.header, clusters))
        done = time.perf_counter()
        self.stats.fused += 1
        for stage, value in zip(
            STAGES, (decoded - start, labelled_at - decoded, clustered - labelled_at, done - clustered, done - start), strict=True
        ):
            self.stats.latency[stage].append(value)

    def _markers(self, header: Any, clusters: list[Cluster]) -> MarkerArray:
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        for index, cluster in enumerate(clusters):
            r, g, b = (float(v) / 255.0 for v in self.palette[cluster.label])
            box = Marker(header=header, ns="boxes", id=index, type=Marker.CUBE, action=Marker.ADD)
            box.pose.position = Point(x=float(cluster.center[0]), y=float(cluster.center[1]), z=float(cluster.center[2]))
            qx, qy, qz, qw = yaw_quaternion(cluster.yaw)
            box.pose.orientation.x, box.pose.orientation.y, box.pose.orientation.z, box.pose.orientation.w = qx, qy, qz, qw
            box.scale.x, box.scale.y, box.scale.z = (max(float(v), 0.05) for v in cluster.size)
            box.color.r, box.color.g, box.color.b, box.color.a = r, g, b, 0.4
            text = Marker(header=header, ns="labels", id=index, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
            text.pose.position = Point(x=float(cluster.center[0]), y=float(cluster.center[1]), z=float(cluster.box_max[2] + 0.5))
            text.pose.orientation.w = 1.0
            text.scale.z = 0.6
            text.color.r = text.color.g = text.color.b = text.color.a = 1.0
            name = self.classes[cluster.label] if cluster.label < len(self.classes) else str(cluster.label)
            text.text = f"{name} ({len(cluster.indices)})"
            markers += [box, text]
        return MarkerArray(markers=markers)

    # ------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        since, fused = self._window
        self._window = (now, self.stats.fused)
        stats = self.sync.stats
        values = {
            "calibration": self.config.calibration_source if self._calibration_ready() else "missing",
            "distortion": self.distortion,
            "fused_rate_hz": f"{(self.stats.fused - fused) / max(now - since, 1e-9):.2f}",
            **{k: str(v) for k, v in self.stats.counts().items()},
            "pairs": str(stats.pairs),
            "unmatched_points": str(stats.unmatched["points"]),
            "unmatched_masks": str(stats.unmatched["mask"]),
            "sync_resets": str(stats.resets),
        }
        values |= latency_values(self.stats.latency)
        problems = self.stats.failed + self.stats.no_calibration
        self.diagnostics_pub.publish(
            diagnostics_message(self, values, "failures or missing calibration: see counts" if problems else None, "cpu")
        )

    def _calibration_ready(self) -> bool:
        return self.calibration is not None or self.calibration_source.extrinsic_from_tf


def main(args: list[str] | None = None) -> int:
    """`ros2 run semseg_ros fusion_node --ros-args --params-file config/kitti.yaml`."""
    from semseg_ros.ros.node_process import run_nodes

    return run_nodes([FusionNode], args)


if __name__ == "__main__":
    raise SystemExit(main())
