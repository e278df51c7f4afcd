"""Soak: player + segmentation_node + fusion_node as three processes on a looped synthetic bag.

    .venv/bin/python bench/soak.py [--frames 3000] [--rates max,1] [--model models/synthetic_unet_mobilenet.pt] [--json out.json]

For each playback rate (`max`: 30 Hz, faster than the node can segment on a CPU; `1`: the
recorded 10 Hz), runs until `--frames` camera images have been published and reports per process
the resident memory after warm-up (20 % of the run) and at the end, and the growth between them;
the frame accounting (images published, received by the node, processed, dropped by the
newest-frame policy, rejected, failed, masks and labelled clouds delivered, frames lost); and the
image-to-mask latency p50/p99 of the first and last tenth of the run side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
os.environ.update({"ROS_DOMAIN_ID": str(100 + os.getpid() % 100), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from semseg_ros.bags import kitti_to_bag  # noqa: E402
from semseg_ros.node_params import SYNTHETIC_MODEL  # noqa: E402
from semseg_ros.ros.node_process import spinning_in_background  # noqa: E402
from semseg_ros.synth import writers  # noqa: E402
from semseg_ros.topics import KITTI_REMAPS, remap_arguments  # noqa: E402


class Monitor(Node):
    """Counts what goes over the wire and when, keyed by header stamp."""

    def __init__(self) -> None:
        super().__init__("semseg_soak_monitor")
        self.lock = threading.Lock()
        self.images = 0
        self.published = 0  # the player's highest publication sequence number: images it sent
        self.image_time: dict[tuple[int, int], float] = {}
        self.latencies: list[float] = []
        self.masks = 0
        self.unmatched_masks = 0
        self.loop_seconds = float("inf")
        self.clouds = 0
        self.diagnostics: dict[str, dict[str, str]] = {}
        seg, fusion = KITTI_REMAPS["segmentation_node"], KITTI_REMAPS["fusion_node"]
        self.create_subscription(Image, seg["image"], self._on_image, qos_profile_sensor_data)
        self.create_subscription(Image, seg["mask"], self._on_mask, qos_profile_sensor_data)
        self.create_subscription(PointCloud2, fusion["labelled_points"], self._on_cloud, qos_profile_sensor_data)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    @staticmethod
    def _key(msg: Any) -> tuple[int, int]:
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def _on_image(self, msg: Image, info: dict[str, Any]) -> None:
        with self.lock:
            self.images += 1
            self.published = max(self.published, info.get("publication_sequence_number") or 0)
            self.image_time[self._key(msg)] = time.monotonic()

    def _on_mask(self, msg: Image) -> None:
        with self.lock:
            self.masks += 1
            sent = self.image_time.get(self._key(msg))
            # Stamps repeat every loop of the bag: a mask older than one loop matched an image the
            # monitor missed (best effort) from an earlier loop, so it has no latency to report.
            if sent is not None and time.monotonic() - sent < self.loop_seconds:
                self.latencies.append(time.monotonic() - sent)
            else:
                self.unmatched_masks += 1

    def _on_cloud(self, _: PointCloud2) -> None:
        with self.lock:
            self.clouds += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name.split(": ")[-1]] = {kv.key: kv.value for kv in status.values}


def start(args: list[str]) -> subprocess.Popen[bytes]:
    # PYTHONFAULTHANDLER: a process that dies of a signal prints every thread's Python stack to its stderr
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "semseg_ros", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def soak(bag: Path, calib_dir: Path, model: str, frames: int, rate: str, loop_seconds: float) -> dict[str, Any]:
    params = str(ROOT / "config/kitti.yaml")
    calibration = ["-p", "calibration_source:=kitti_raw", "-p", f"kitti_calib_dir:={calib_dir}"]
    nodes = {
        "segmentation_node": start(
            ["node", "segmentation", "--params", params, *remap_arguments("segmentation_node"), "-p", f"model:={model}"]
        ),
        "fusion_node": start(["node", "fusion", "--params", params, *remap_arguments("fusion_node"), *calibration]),
    }
    monitor = Monitor()
    player_rate = "3" if rate == "max" else rate  # 30 Hz: faster than a CPU node can segment
    monitor.loop_seconds = loop_seconds / float(player_rate)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    spinner = ExitStack()  # closed: spinning stops, then the executor shuts down (node_process.shut_down)
    spinner.enter_context(spinning_in_background(executor))
    deadline = time.monotonic() + 120
    while not {"segmentation_node", "fusion_node"} <= set(monitor.diagnostics):  # both up, model warmed up
        if time.monotonic() > deadline or any(p.poll() is not None for p in nodes.values()):
            raise SystemExit(
                "nodes did not start: " + "; ".join((p.stderr.read() or b"").decode()[-500:] for p in nodes.values() if p.stderr)
            )
        time.sleep(0.2)
    processes = {**nodes, "player": start(["play", str(bag), "--loop", "--rate", player_rate])}
    memory: dict[str, list[tuple[int, int]]] = {name: [] for name in processes}
    started = time.monotonic()
    while monitor.published < frames:
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}: {(process.stderr.read() or b'').decode()[-800:]}")
            memory[name].append((monitor.published, psutil.Process(process.pid).memory_info().rss))
        time.sleep(0.25)
    wall = time.monotonic() - started
    processes["player"].send_signal(signal.SIGINT)
    processes["player"].wait(timeout=20)
    time.sleep(3.0)  # let the last frame through and a final diagnostics message out
    for process in nodes.values():
        process.send_signal(signal.SIGINT)
    exits = {name: process.wait(timeout=30) for name, process in nodes.items()}
    failed_output = {
        name: (p.stderr.read() if p.stderr else b"").decode(errors="replace")[-3000:] for name, p in nodes.items() if exits[name]
    }
    spinner.close()
    monitor.destroy_node()

    seg = monitor.diagnostics["segmentation_node"]
    fusion = monitor.diagnostics["fusion_node"]
    keys = ("received", "processed", "dropped", "rejected", "failed", "idle_no_subscribers", "lost_in_transport")
    counts = {key: int(seg[key]) for key in keys}
    first, last = int(seg["first_sequence"]), int(seg["last_sequence"])
    handled = counts["processed"] + counts["dropped"] + counts["rejected"] + counts["failed"] + counts["idle_no_subscribers"]
    tenth = max(1, len(monitor.latencies) // 10)
    early, late = np.asarray(monitor.latencies[:tenth]) * 1e3, np.asarray(monitor.latencies[-tenth:]) * 1e3
    result: dict[str, Any] = {
        "rate": rate,
        "frames_published": monitor.published,
        "wall_s": round(wall, 1),
        "node": counts,
        # Between the first and the last frame the node heard, every published image is processed,
        # dropped by the newest-frame policy, rejected, failed, or counted as lost in transport (best
        # effort); whatever is left is a frame nobody accounted for. Before the first: published
        # while DDS discovery was still matching the player and the node; after the last: the tail.
        "unaccounted": (last - first + 1) - handled - counts["lost_in_transport"],
        "before_first_heard": first - 1,
        "after_last_heard": monitor.published - last,
        "masks_delivered": monitor.masks,
        "clouds_fused": int(fusion.get("fused", 0)),
        "clouds_delivered": monitor.clouds,
        "fusion_failed": int(fusion.get("failed", 0)),
        "latency_ms": {
            "first_tenth": [round(float(np.percentile(early, q)), 1) for q in (50, 99)],
            "last_tenth": [round(float(np.percentile(late, q)), 1) for q in (50, 99)],
            "masks_without_latency": monitor.unmatched_masks,
            "node_total_p50_p95": [float(seg.get("total_ms_p50", "nan")), float(seg.get("total_ms_p95", "nan"))],
        },
        "memory_mb": {},
        "exit_codes": exits,
        "stderr_of_failed": failed_output,  # the tail of what a node that did not exit 0 printed
    }
    for name, samples in memory.items():
        warm = next(rss for images, rss in samples if images >= frames * 0.2)
        end = samples[-1][1]
        result["memory_mb"][name] = {
            "warm": round(warm / 2**20, 1),
            "end": round(end / 2**20, 1),
            "growth_pct": round(100 * (end - warm) / warm, 2),
            "by_tenth": [round(next(rss for images, rss in samples if images >= frames * k / 10) / 2**20) for k in range(1, 10)]
            + [round(end / 2**20)],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rates", default="max,1", help="comma-separated: max and/or playback rates (1 = recorded 10 Hz)")
    parser.add_argument("--model", default=str(ROOT / "models" / SYNTHETIC_MODEL))
    parser.add_argument("--drive-frames", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rclpy.init()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        drive = writers.write_kitti_raw(Path(folder) / "data", frames=args.drive_frames, seed=11, progress=False)
        kitti_to_bag(drive, Path(folder) / "bag", "mcap")
        for rate in args.rates.split(","):
            result = soak(Path(folder) / "bag", drive.parent, args.model, args.frames, rate, args.drive_frames / 10.0)
            results.append(result)
            print(json.dumps(result), flush=True)
    rclpy.shutdown()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"\n{'rate':>5} {'frames':>6} {'recv':>6} {'proc':>6} {'drop':>6} {'trans':>6} {'pre':>4} {'lost':>5} {'masks':>6} {'fused':>6} "
          f"{'lat p50/p99 first':>18} {'last':>12} {'seg MB warm->end':>17} {'fusion MB':>14} {'player MB':>14}")  # fmt: skip
    for r in results:
        m = r["memory_mb"]
        mem = {k: f"{v['warm']:.0f}->{v['end']:.0f} {v['growth_pct']:+.1f}%" for k, v in m.items()}
        first, last = r["latency_ms"]["first_tenth"], r["latency_ms"]["last_tenth"]
        print(
            f"{r['rate']:>5} {r['frames_published']:>6} {r['node']['received']:>6} {r['node']['processed']:>6} {r['node']['dropped']:>6} "
            f"{r['node']['lost_in_transport']:>6} {r['before_first_heard']:>4} {r['unaccounted']:>5} {r['masks_delivered']:>6} {r['clouds_fused']:>6} {first[0]:>8.0f}/{first[1]:<8.0f} "
            f"{last[0]:>5.0f}/{last[1]:<6.0f} {mem['segmentation_node']:>17} {mem['fusion_node']:>14} {mem['player']:>14}"
        )


if __name__ == "__main__":
    main()
