"""`semseg demo` / `make demo`: the whole stack end to end on one command.

synthetic KITTI drive (or a real one) -> ROS 2 bag -> player + segmentation_node + fusion_node
through real rclpy -> recorded outputs -> scores against the ground truth (pixel mIoU, point-label
accuracy, cluster recall), per-stage latency and FPS -> a report folder with report.md, an overlay
PNG, a bird's-eye view of the labelled cloud with cluster boxes, and an MP4 of the overlays.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from semseg_ros.bags import kitti_to_bag
from semseg_ros.data.kitti_raw import KittiDrive, read_timestamps
from semseg_ros.errors import SemsegError
from semseg_ros.eval.metrics import ConfusionMatrix
from semseg_ros.eval.predict import VideoWriter
from semseg_ros.fusion.bev import bev_picture
from semseg_ros.labels import IGNORE, LabelSet, get_label_set
from semseg_ros.node_params import REAL_MODEL, SYNTHETIC_MODEL
from semseg_ros.pictures import captioned, legend_strip
from semseg_ros.ros.conversions import image_to_rgb, mask_from_image
from semseg_ros.ros.pointcloud import read_fields
from semseg_ros.synth import writers
from semseg_ros.topics import KITTI_REMAPS, TOPICS

OUT = KITTI_REMAPS["segmentation_node"]
PACE_TIMEOUT_S = 30.0  # longest wait for one frame's mask before the player moves on (the frame then counts as lost)
FUSED = KITTI_REMAPS["fusion_node"]


@dataclass
class Recording:
    masks: dict[int, Any] = field(default_factory=dict)
    overlays: dict[int, Any] = field(default_factory=dict)
    clouds: dict[int, Any] = field(default_factory=dict)
    markers: dict[int, Any] = field(default_factory=dict)
    gt_semantic: dict[int, Any] = field(default_factory=dict)
    gt_points: dict[int, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, store: dict[int, Any], msg: Any) -> None:
        with self.lock:
            store[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg


def _recorder(recording: Recording) -> Any:
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2
    from visualization_msgs.msg import MarkerArray

    node = Node("semseg_demo_recorder")
    reliable = QoSProfile(depth=50)
    node.create_subscription(Image, OUT["mask"], lambda m: recording.add(recording.masks, m), reliable)
    node.create_subscription(Image, OUT["overlay"], lambda m: recording.add(recording.overlays, m), reliable)
    node.create_subscription(PointCloud2, FUSED["labelled_points"], lambda m: recording.add(recording.clouds, m), reliable)

    def on_markers(msg: Any) -> None:
        if msg.markers:
            recording.add(recording.markers, msg.markers[0])

    node.create_subscription(MarkerArray, FUSED["clusters"], on_markers, reliable)
    node.create_subscription(Image, TOPICS["semantic"], lambda m: recording.add(recording.gt_semantic, m), qos_profile_sensor_data)
    node.create_subscription(PointCloud2, TOPICS["point_labels"], lambda m: recording.add(recording.gt_points, m), qos_profile_sensor_data)
    return node


def run_pipeline(
    bag: Path, model: str, calib_dir: Path, rate: float, params: Path | None, cache_dir: Path
) -> tuple[Recording, dict[str, Any]]:
    """Play `bag` through both nodes in this process; returns what was published and node statistics."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from semseg_ros.ros.launcher import kitti_local_arguments, kitti_nodes
    from semseg_ros.ros.node_process import ros_arguments, spinning_in_background

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    recording = Recording()
    local = kitti_local_arguments(model, calib_dir)
    rclpy.init(args=ros_arguments(params or Path("kitti.yaml"), ["--ros-args", "-p", f"cache_dir:={cache_dir}"], local=local))
    nodes: list[Any] = []
    try:
        nodes = [factory() for factory in kitti_nodes(bag, model, rate=rate, calib_dir=calib_dir)]
        segmentation, fusion, player = nodes
        recorder = _recorder(recording)
        nodes.append(recorder)
        executor = MultiThreadedExecutor(num_threads=4)
        for node in nodes:
            executor.add_node(node)

        with spinning_in_background(executor):
            deadline = time.monotonic() + 15.0  # discovery: every node listens before the first message
            while time.monotonic() < deadline and not all(pub.get_subscription_count() > 0 for pub in player.publishers_by_id.values()):
                time.sleep(0.1)
            time.sleep(0.5)
            images = 0

            def pace(topic: str) -> None:
                """Every camera frame is segmented and scored: the next image waits for the last one's mask."""
                nonlocal images
                if topic == TOPICS["image"]:
                    deadline = time.monotonic() + PACE_TIMEOUT_S
                    while len(recording.masks) < images and time.monotonic() < deadline and not player.stopping:
                        time.sleep(0.005)
                    images += 1

            player.pace = pace
            started = time.monotonic()
            player.start()
            player.finished.wait()
            deadline = time.monotonic() + 10.0  # let the last frames through both nodes
            expected = len(recording.gt_points) or player.published
            while time.monotonic() < deadline and (
                segmentation.has_pending_frame or len(recording.clouds) < min(expected, fusion.sync.stats.pairs + 1)
            ):
                time.sleep(0.2)
            time.sleep(1.0)
            wall = time.monotonic() - started
            stats = {
                "wall_s": wall,
                "rate": rate,
                "published": player.published,
                "segmentation": {
                    "received": segmentation.stats.received,
                    "processed": segmentation.stats.processed,
                    "dropped": segmentation.stats.dropped,
                    "latency": {k: list(v) for k, v in segmentation.stats.latency.items()},
                },
                "fusion": {
                    **fusion.stats.counts(),
                    "latency": {k: list(v) for k, v in fusion.stats.latency.items()},
                    "unmatched": dict(fusion.sync.stats.unmatched),
                    "waiting": len(fusion.sync.queues["points"]),  # never paired: the run ended first
                    "slop": fusion.config.slop,
                },
                "backend": f"{segmentation.segmenter.backend.name} on {segmentation.segmenter.device}",
                "labels": segmentation.segmenter.card.label_set,
            }
    except Exception:
        if not rclpy.ok():  # SIGTERM (or SIGINT) made rclpy shut its context down under our waits
            raise KeyboardInterrupt from None
        raise
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return recording, stats


def score(recording: Recording, label_set: LabelSet) -> dict[str, Any]:
    """Masks against GT pixels, labelled points against GT points, clusters against GT instances."""
    matrix = ConfusionMatrix(label_set.num_classes)
    for stamp, mask_msg in recording.masks.items():
        gt = recording.gt_semantic.get(stamp)
        if gt is not None:
            matrix.update(
                torch.from_numpy(label_set.map_cityscapes_ids(mask_from_image(gt))), torch.from_numpy(mask_from_image(mask_msg).copy())
            )
    labelled = correct = in_view = expected = matched = produced = good = 0
    for stamp, cloud in recording.clouds.items():
        truth = recording.gt_points.get(stamp)
        if truth is None:
            continue
        ours, gt = read_fields(cloud), read_fields(truth)
        if len(ours["label"]) != len(gt["label"]):
            continue
        gt_labels = label_set.map_cityscapes_ids(gt["label"].astype(np.uint8))
        given = ours["label"] != IGNORE
        labelled += int(given.sum())
        correct += int((ours["label"][given] == gt_labels[given]).sum())
        camera_side = gt["x"] > 0
        in_view += int(camera_side.sum())
        clusters = ours["cluster"]
        for instance in np.unique(gt["instance"][given & (gt["instance"] > 0)]):
            members = given & (gt["instance"] == instance)
            if members.sum() < 30:
                continue
            label = int(np.bincount(gt_labels[members]).argmax())
            expected += 1
            ids, _counts = np.unique(clusters[members], return_counts=True)
            best = 0.0
            for cluster_id in ids[ids >= 0]:
                inside = clusters == cluster_id
                if np.bincount(ours["label"][inside]).argmax() == label:
                    best = max(best, (inside & members).sum() / (inside | members).sum())
            matched += best >= 0.5
        for cluster_id in np.unique(clusters[clusters >= 0]):
            owners = gt["instance"][clusters == cluster_id]
            produced += 1
            good += bool(np.bincount(owners).argmax() > 0 and np.bincount(owners).max() / len(owners) >= 0.5)
    iou = matrix.iou()
    tp, fp, fn = matrix.counts()
    return {
        "frames_scored": len([s for s in recording.masks if s in recording.gt_semantic]),
        "pixel_mIoU": matrix.mean_iou(),
        "pixel_accuracy": matrix.pixel_accuracy(),
        "class_iou": {c: (None if np.isnan(v) else float(v)) for c, v in zip(label_set.classes, iou, strict=True)},
        "class_gt_pixels": {c: int(n) for c, n in zip(label_set.classes, tp + fn, strict=True)},  # what a class's IoU rests on
        "class_predicted_pixels": {c: int(n) for c, n in zip(label_set.classes, tp + fp, strict=True)},
        "point_label_accuracy": correct / max(labelled, 1),
        "points_labelled": labelled,
        "cluster_recall": matched / max(expected, 1),
        "cluster_precision": good / max(produced, 1),
        "gt_instances": expected,
    }


def _latency(samples: list[float]) -> dict[str, float | int | None]:
    """p50 / p95 in milliseconds and the sample count of one stage's latencies (seconds)."""
    if not samples:
        return {"p50_ms": None, "p95_ms": None, "samples": 0}
    ms = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "samples": len(samples)}


def _ms(stage: dict[str, Any]) -> str:
    return "n/a" if stage["p50_ms"] is None else f"{stage['p50_ms']:.1f} / {stage['p95_ms']:.1f}"


def _stamp_text(stamp_ns: int) -> str:
    """A stamp as UTC date and time to the millisecond, as KITTI's timestamps.txt writes it."""
    when = datetime.datetime.fromtimestamp(stamp_ns // 1_000_000_000, datetime.timezone.utc)
    return f"{when:%Y-%m-%d %H:%M:%S}.{stamp_ns % 1_000_000_000 // 1_000_000:03d}"


def _frame_caption(what: str, stamps: list[int], stamp: int, drive_dir: Path | None, sensor: str, suffix: str) -> str:
    """Which frame a picture shows: its place among the recorded ones, its file in the drive, its stamp."""
    caption = f"{what}: frame {stamps.index(stamp) + 1} of {len(stamps)}"
    timestamps = drive_dir / sensor / "timestamps.txt" if drive_dir is not None else None
    if timestamps is not None and timestamps.is_file():
        index = np.flatnonzero(read_timestamps(timestamps) == stamp)
        if len(index):
            caption += f", {sensor}/data/{int(index[0]):010d}{suffix}"
    return f"{caption}, stamp {_stamp_text(stamp)} UTC"


def write_report(
    out: Path,
    recording: Recording,
    stats: dict[str, Any],
    scores: dict[str, Any] | None,
    label_set: LabelSet,
    drive_dir: Path | None = None,
    started: float | None = None,
) -> str:
    """report.md, report.json, overlay.png, bev.png, demo.mp4 under `out`; returns the summary table.

    report.md is written from the same dict as report.json. `started` (time.perf_counter() at the
    demo's start) gives the demo's wall time, measured once, after the pictures and the video.
    """
    out.mkdir(parents=True, exist_ok=True)
    pictures: dict[str, str] = {}
    stamps = sorted(recording.overlays)
    if stamps:
        middle = stamps[len(stamps) // 2]
        pictures["overlay.png"] = _frame_caption("overlay", stamps, middle, drive_dir, "image_02", ".png")
        picture = image_to_rgb(recording.overlays[middle])
        if middle in recording.masks:  # which colour is which class: the classes in this frame's mask
            present = [int(c) for c in np.unique(mask_from_image(recording.masks[middle])) if c < len(label_set.classes)]
            entries = [(label_set.classes[c], tuple(int(v) for v in label_set.colors[c])) for c in present]
            picture = np.concatenate([picture, legend_strip(picture.shape[1], entries)], axis=0)
        cv2.imwrite(str(out / "overlay.png"), captioned(picture, pictures["overlay.png"])[..., ::-1])
        writer = VideoWriter(out / "demo.mp4", fps=10.0)
        for stamp in stamps:
            writer.write(image_to_rgb(recording.overlays[stamp]))
        writer.close()
    clouds = sorted(recording.clouds)
    if clouds:
        middle = clouds[len(clouds) // 2]
        fields = read_fields(recording.clouds[middle])
        xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=1)
        pictures["bev.png"] = _frame_caption("labelled cloud", clouds, middle, drive_dir, "velodyne_points", ".bin")
        bev = bev_picture(xyz, fields["label"], label_set.classes, label_set.colors, pictures["bev.png"], fields["cluster"])
        cv2.imwrite(str(out / "bev.png"), bev.image[..., ::-1])
    seg, fusion = stats["segmentation"], stats["fusion"]
    report = {
        "run": {
            "backend": stats["backend"],
            "label_set": stats["labels"],
            "messages_played": stats["published"],
            "camera_frames": {k: seg[k] for k in ("received", "processed", "dropped")},
            "clouds_fused": fusion["fused"],
            "clouds_without_mask": fusion["unmatched"]["points"] + fusion["waiting"],  # no mask stamped within `slop` of the cloud
            "slop_s": fusion["slop"],
            "pipeline_wall_s": stats["wall_s"],
            "playback_rate": stats["rate"],
            "frames_per_second_played": seg["processed"] / max(stats["wall_s"], 1e-9),
            "latency_ms": {
                "segmentation": {k: _latency(v) for k, v in seg["latency"].items()},
                "fusion": {k: _latency(v) for k, v in fusion["latency"].items()},
            },
            "demo_wall_s": None if started is None else time.perf_counter() - started,
        },
        "pictures": pictures,
        "scores": scores,
    }
    table = _summary_table(report)
    lines = ["# semseg_ros demo report", "", "```", table, "```", ""]
    if scores is not None:
        lines += ["## Per-class IoU", "", "| class | IoU | GT pixels | predicted pixels |", "|---|---|---|---|"]
        for c, v in scores["class_iou"].items():
            lines.append(
                f"| {c} | {'n/a' if v is None else f'{v:.3f}'} | {scores['class_gt_pixels'][c]:,} | {scores['class_predicted_pixels'][c]:,} |"
            )
        lines.append("")
    for name, caption in pictures.items():
        lines += [f"![{name[:-4]}]({name})", "", f"*{caption}*", ""]
    lines += ["Video: demo.mp4", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return table


def _capacity(stage: dict[str, Any]) -> str:
    """What the node could sustain at its median latency, as opposed to what playback asked of it."""
    return f" (about {1000 / stage['p50_ms']:.1f} FPS if frames came faster)" if stage.get("p50_ms") else ""


def _summary_table(report: dict[str, Any]) -> str:
    """The console's and report.md's summary, from report.json's dict."""
    run, scores = report["run"], report["scores"]
    seg, fusion, frames = run["latency_ms"]["segmentation"], run["latency_ms"]["fusion"], run["camera_frames"]
    rows = [
        ("backend", run["backend"]),
        ("messages played", str(run["messages_played"])),
        ("camera frames processed / received (dropped)", f"{frames['processed']} / {frames['received']} ({frames['dropped']})"),
        (
            "clouds fused",
            str(run["clouds_fused"])
            + (f" ({run['clouds_without_mask']} dropped: no mask within slop {run['slop_s']:g} s)" if run["clouds_without_mask"] else ""),
        ),
        (
            "frames segmented per second",
            f"{run['frames_per_second_played']:.2f} over {run['pipeline_wall_s']:.1f} s, playback paced at --rate {run['playback_rate']:g}",
        ),
        ("segmentation ms p50/p95: total", _ms(seg["total"]) + _capacity(seg["total"])),
        (
            "  convert / preprocess / infer / postprocess / publish",
            " | ".join(_ms(seg[k]) for k in ("convert", "preprocess", "infer", "postprocess", "publish")),
        ),
        ("fusion ms p50/p95: total", _ms(fusion["total"])),
        ("  decode / label / cluster / publish", " | ".join(_ms(fusion[k]) for k in ("decode", "label", "cluster", "publish"))),
    ]
    if scores is not None:
        rows += [
            ("pixel mIoU (masks vs GT)", f"{scores['pixel_mIoU']:.3f} over {scores['frames_scored']} frames"),
            ("pixel accuracy", f"{scores['pixel_accuracy']:.3f}"),
            ("point-label accuracy (labelled points)", f"{scores['point_label_accuracy']:.3f} of {scores['points_labelled']:,}"),
            (
                "cluster recall / precision",
                f"{scores['cluster_recall']:.3f} / {scores['cluster_precision']:.3f} ({scores['gt_instances']} GT instances)",
            ),
        ]
    if run["demo_wall_s"] is not None:
        rows.append(("demo wall time (drive, bag, pipeline, report)", f"{run['demo_wall_s']:.0f} s"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run_demo(
    out: Path,
    frames: int = 50,
    seed: int = 0,
    model: str | None = None,
    rate: float = 0.25,
    drive: Path | None = None,
    params: Path | None = None,
) -> str:
    """The end-to-end demo; returns the printed summary table (its wall time runs from this call).

    `model` defaults to the synthetic model on the synthetic drive (scored against its ground truth at
    all 19 classes) and to the real CamVid model on a real `drive`.
    """
    started = time.perf_counter()
    out = Path(out)
    if model is None:
        model = SYNTHETIC_MODEL if drive is None else REAL_MODEL
    if drive is None:
        data = out / "data"
        if data.exists():
            import shutil

            shutil.rmtree(data)
        drive_dir = writers.write_kitti_raw(data, frames=frames, seed=seed)
    else:
        drive_dir = KittiDrive(drive).path
    bag = out / "bag"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    kitti_to_bag(drive_dir, bag, "mcap", f"0:{frames}" if drive is not None else None)
    recording, stats = run_pipeline(bag, model, drive_dir.parent, rate, params, out / "cache")
    if not recording.masks:
        raise SemsegError("no masks came back from segmentation_node; see the node messages above")
    label_set = get_label_set(stats["labels"])
    scores = score(recording, label_set) if recording.gt_semantic else None
    return write_report(out / "report", recording, stats, scores, label_set, drive_dir, started)
