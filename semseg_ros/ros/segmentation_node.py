"""segmentation_node: camera images in; class masks, colour masks, overlays and confidence out.

A thin rclpy layer over `Segmenter`: the subscription callback only stores the newest message;
a worker thread converts, predicts and publishes it, so a slow model never builds a backlog
(frames replaced before they were processed are counted as dropped). Outputs are computed only
when someone subscribes and carry the input's header unchanged.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from semseg_ros import stop_signals
from semseg_ros.errors import SemsegError
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.labels import palette_array
from semseg_ros.node_params import SEGMENTATION_NODE, SegmentationConfig
from semseg_ros.node_params import parse_palette as parse_palette_text
from semseg_ros.paths import resolve_data_file
from semseg_ros.pictures import overlay
from semseg_ros.ros import params as ros_params
from semseg_ros.ros.conversions import compressed_to_rgb, fill_image, image_to_rgb
from semseg_ros.ros.diagnostics import TransportGaps, diagnostics_message, latency_values
from semseg_ros.ros.guard import guarded, guarded_parameters, shutting_down
from semseg_ros.ros.params import qos

STAGES = ("convert", "preprocess", "infer", "postprocess", "publish", "total")
OUTPUTS = ("mask", "color_mask", "overlay", "confidence")


@dataclass
class Stats:
    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before processing
    rejected: int = 0  # bad input
    failed: int = 0  # model errors
    idle: int = 0  # nobody subscribed: no work done
    callback_errors: int = 0  # exceptions caught around callbacks (a bug or an input no check foresaw)
    rejected_parameters: int = 0  # parameter changes refused
    gaps: TransportGaps = field(default_factory=TransportGaps)  # frames DDS dropped before we saw them, per publisher
    latency: dict[str, deque[float]] = field(default_factory=lambda: {s: deque(maxlen=200) for s in STAGES})


def parse_palette(text: str, classes: int) -> np.ndarray | None:
    """The `palette` parameter: '' (None) or a JSON list of 1-256 [r, g, b] (0-255), at least one per class,
    as a 256x3 uint8 lookup table. SemsegError names what is wrong."""
    try:
        colors = parse_palette_text(text)
    except SemsegError as exc:
        raise SemsegError(f"palette: {exc}") from None
    if colors is None:
        return None
    if len(colors) < classes:
        raise SemsegError(f"palette: {len(colors)} colours for {classes} classes; give one [r, g, b] per class")
    return palette_array(colors)


class SegmentationNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__(SEGMENTATION_NODE, **kwargs)
        self.config = ros_params.declare(self, SegmentationConfig)
        c = self.config
        model_path = resolve_data_file(c.model, "models")
        self.segmenter = Segmenter.from_path(
            model_path, backend=c.backend, device=c.device, fp16=c.fp16, input_size=c.input_size, keep_aspect=c.keep_aspect,
            cuda_graphs=c.cuda_graphs, cache_dir=c.cache_dir or None, precision=c.precision,
            cancel=stop_signals.requested,  # Ctrl-C while it times the CPU runtimes: stop within one step
        )  # fmt: skip
        card = self.segmenter.card
        if c.label_set and c.label_set != card.label_set:
            raise SemsegError(
                f"{model_path}: the model predicts label set {card.label_set} ({len(card.classes)} classes), the node's label_set "
                f"parameter asks for {c.label_set}; use a model trained on {c.label_set} or set label_set to ''"
            )
        self.palette = self._palette(c.palette)
        self.stats = Stats()
        self.add_on_set_parameters_callback(guarded_parameters(self, self._on_set_parameters, self._count_error))
        self._slot: Any = None
        self._cond = threading.Condition()
        self._running = True
        self._last_process = 0.0

        out_qos = qos(c.output_reliability, c.output_depth)
        self.pubs = {
            "mask": self.create_publisher(Image, "mask", out_qos),
            "color_mask": self.create_publisher(Image, "color_mask", out_qos),
            "overlay": self.create_publisher(Image, "overlay", out_qos),
            "confidence": self.create_publisher(Image, "confidence", out_qos),
        }
        self.labels_pub = self.create_publisher(String, "labels", qos("reliable", 1, "transient_local"))
        self.labels_pub.publish(
            String(
                data=json.dumps(
                    {
                        "label_set": card.label_set,
                        "classes": list(card.classes),
                        "ids": list(range(len(card.classes))),
                        "colors": [list(x) for x in card.colors],
                    }
                )
            )
        )
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        if c.warmup_runs and not stop_signals.requested():
            self.segmenter.warmup(runs=c.warmup_runs)
        in_qos = qos(c.input_reliability, c.input_depth)
        # the guard keeps _on_image's two-argument signature, so rclpy passes MessageInfo (sequence numbers)
        on_image = guarded(self, self._on_image, "image callback failed", self._count_error)
        if c.input_transport == "compressed":
            self.input_sub = self.create_subscription(CompressedImage, "image/compressed", on_image, in_qos)
        else:
            self.input_sub = self.create_subscription(Image, "image", on_image, in_qos)
        self._worker = threading.Thread(target=self._work, name="segmentation_worker", daemon=True)
        self._worker.start()
        self._diag_window = (time.monotonic(), 0, 0)
        # a steady clock: /diagnostics keeps coming while a bag (use_sim_time) is paused or has ended
        self.create_timer(
            c.diagnostics_period,
            guarded(self, self._publish_diagnostics, "diagnostics failed", self._count_error),
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        backend = self.segmenter.backend
        self.get_logger().info(
            f"ready: {model_path.name} ({card.label_set}, {len(card.classes)} classes) on {backend.name} {backend.device}, network {self.segmenter.input_size}"
        )

    # ------------------------------------------------------------ params
    def _on_set_parameters(self, updates: list[Parameter]) -> Any:
        def extra(update: Parameter) -> str | None:
            if update.name == "palette":
                try:
                    parse_palette(update.value, len(self.segmenter.card.classes))
                except SemsegError as exc:
                    return str(exc)
            return None

        result, self.config = ros_params.apply_update(self.config, updates, extra)
        if result.successful and any(update.name == "palette" for update in updates):
            self.palette = self._palette(self.config.palette)
        return result

    def _count_error(self, what: str) -> None:
        if what == "rejected_parameters":
            self.stats.rejected_parameters += 1
        else:
            self.stats.callback_errors += 1

    def _palette(self, text: str) -> np.ndarray:
        parsed = parse_palette(text, len(self.segmenter.card.classes))
        return parsed if parsed is not None else palette_array(self.segmenter.card.colors)

    # ------------------------------------------------------------ frames
    @property
    def has_pending_frame(self) -> bool:
        """A received frame waits for the worker (the newest-frame slot is full)."""
        return self._slot is not None

    def _on_image(self, msg: Any, info: dict[str, Any]) -> None:
        """Newest frame into the slot (rclpy passes MessageInfo because this takes two arguments)."""
        with self._cond:
            self.stats.received += 1
            self.stats.gaps.add(info, lambda: self.count_publishers(self.input_sub.topic_name))
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = msg
            self._cond.notify()

    def _work(self) -> None:
        while self._running:
            with self._cond:
                while self._slot is None and self._running:
                    self._cond.wait(timeout=0.5)
                if not self._running:
                    return
            rate = self.config.max_rate_hz
            if rate > 0:
                wait = self._last_process + 1.0 / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # newer frames may replace the slot meanwhile: we take the newest
            with self._cond:
                msg, self._slot = self._slot, None
            if msg is None:
                continue
            self._last_process = time.monotonic()
            try:
                self._process(msg)
            except Exception as exc:  # the worker must survive anything
                if shutting_down(self) or not self._running:
                    return  # publishers are gone: nothing left to do, nothing to report
                self.stats.failed += 1
                self.get_logger().error(f"frame failed: {exc!r}", throttle_duration_sec=5.0)

    def _wanted(self) -> dict[str, bool]:
        return {name: bool(getattr(self.config, f"publish_{name}")) and self.pubs[name].get_subscription_count() > 0 for name in OUTPUTS}

    def _process(self, msg: Any) -> None:
        start = time.perf_counter()
        wanted = self._wanted()
        if not any(wanted.values()):
            self.stats.idle += 1
            return
        try:
            limit = self.config.max_image_pixels
            image = compressed_to_rgb(msg, limit) if isinstance(msg, CompressedImage) else image_to_rgb(msg, limit)
        except SemsegError as exc:
            self.stats.rejected += 1
            self.get_logger().warning(f"rejected image: {exc}", throttle_duration_sec=5.0)
            return
        converted = time.perf_counter()
        try:
            self.segmenter.upsampling = self.config.upsampling
            prediction = self.segmenter.predict(image, confidence=wanted["confidence"])
        except Exception as exc:
            self.stats.failed += 1
            self.get_logger().error(f"model failed on a frame: {exc!r}", throttle_duration_sec=5.0)
            return
        predicted = time.perf_counter()
        labels = prediction.labels
        if wanted["mask"]:
            self.pubs["mask"].publish(fill_image(Image(), msg.header, labels, "mono8"))
        if wanted["color_mask"]:
            self.pubs["color_mask"].publish(fill_image(Image(), msg.header, self.palette[labels], "rgb8"))
        if wanted["overlay"]:
            self.pubs["overlay"].publish(
                fill_image(Image(), msg.header, overlay(image, labels, self.palette, self.config.overlay_alpha), "rgb8")
            )
        if wanted["confidence"] and prediction.confidence is not None:
            self.pubs["confidence"].publish(fill_image(Image(), msg.header, prediction.confidence, "mono8"))
        done = time.perf_counter()
        self.stats.processed += 1
        latency = self.stats.latency
        latency["convert"].append(converted - start)
        for stage in ("preprocess", "infer", "postprocess"):
            latency[stage].append(prediction.timings.get(stage, 0.0))
        latency["publish"].append(done - predicted)
        latency["total"].append(done - start)

    # ------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        since, received, processed = self._diag_window
        elapsed = max(now - since, 1e-9)
        stats = self.stats
        self._diag_window = (now, stats.received, stats.processed)
        values = {
            "backend": self.segmenter.backend.name,
            "device": str(self.segmenter.device),
            "model": str(self.config.model),
            "input_rate_hz": f"{(stats.received - received) / elapsed:.2f}",
            "output_rate_hz": f"{(stats.processed - processed) / elapsed:.2f}",
            "received": str(stats.received),
            "processed": str(stats.processed),
            "dropped": str(stats.dropped),
            "rejected": str(stats.rejected),
            "failed": str(stats.failed),
            "idle_no_subscribers": str(stats.idle),
            "callback_errors": str(stats.callback_errors),
            "rejected_parameters": str(stats.rejected_parameters),
            "lost_in_transport": str(stats.gaps.lost),
            "publishers_heard": str(len(stats.gaps.streams)),
            "first_sequence": str(stats.gaps.first),
            "last_sequence": str(stats.gaps.last),
        }
        values |= latency_values(stats.latency)
        self.diagnostics_pub.publish(
            diagnostics_message(self, values, "model failures" if stats.failed else None, str(self.segmenter.device))
        )

    def stop(self) -> None:
        """Stop the worker thread (it finishes the frame in hand): nothing is published after this."""
        self._running = False
        with self._cond:
            self._cond.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """`ros2 run semseg_ros segmentation_node --ros-args --params-file config/kitti.yaml`."""
    from semseg_ros.ros.node_process import run_nodes

    return run_nodes([SegmentationNode], args)


if __name__ == "__main__":
    raise SystemExit(main())
