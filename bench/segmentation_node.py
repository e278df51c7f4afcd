"""segmentation_node timing inside the node (convert / preprocess / infer / postprocess / publish) and
end to end (publish -> mask received), at 1242x375 rgb8, through real rclpy in one process.

    .venv/bin/python bench/segmentation_node.py [--model models/synthetic_unet_mobilenet.pt] [--backend auto]
        [--device cpu|cuda] [--fp16] [--frames 40] [--rate 0 (as fast as masks come back)]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from rosutil import isolate_ros_domain, make_image_msg

isolate_ros_domain()

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from semseg_ros.node_params import SYNTHETIC_MODEL  # noqa: E402
from semseg_ros.ros.node_process import spinning_in_background  # noqa: E402
from semseg_ros.ros.segmentation_node import STAGES, SegmentationNode  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SYNTHETIC_MODEL)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--cuda-graphs", action="store_true")
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    rclpy.init()
    params = {
        "model": args.model,
        "backend": args.backend,
        "device": args.device,
        "fp16": args.fp16,
        "cuda_graphs": args.cuda_graphs,
        "publish_color_mask": False,
        "publish_overlay": False,
        "publish_confidence": False,
    }
    node = SegmentationNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = Node("bench_probe")
    sent: dict[int, float] = {}
    latencies: list[float] = []
    arrived = threading.Event()

    def on_mask(msg: Image) -> None:
        start = sent.get(msg.header.stamp.nanosec)
        if start is not None:
            latencies.append(time.perf_counter() - start)
        arrived.set()

    probe.create_subscription(Image, "mask", on_mask, 10)
    publisher = probe.create_publisher(Image, "image", 1)  # reliable, as segmentation_node subscribes by default
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    executor.add_node(probe)
    spinner = ExitStack()  # closed: spinning stops, then the executor shuts down (node_process.shut_down)
    spinner.enter_context(spinning_in_background(executor))
    image = np.random.default_rng(0).integers(0, 255, (375, 1242, 3), dtype=np.uint8)
    while publisher.get_subscription_count() == 0 or node.pubs["mask"].get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(0.5)
    start = time.perf_counter()
    for index in range(args.frames):
        arrived.clear()
        msg = make_image_msg(image, "rgb8", stamp=(1, index))
        sent[index] = time.perf_counter()
        publisher.publish(msg)
        arrived.wait(timeout=10)
    elapsed = time.perf_counter() - start
    backend = node.segmenter.backend
    print(
        f"segmentation_node, {Path(args.model).name} on {backend.name} {backend.device}, network {node.segmenter.input_size}, 1242x375 rgb8, {args.frames} frames"
    )
    print(f"{'stage':<14}{'p50 ms':>9}{'p95 ms':>9}")
    for stage in STAGES:
        ms = np.asarray(node.stats.latency[stage]) * 1e3
        print(f"{stage:<14}{np.percentile(ms, 50):9.2f}{np.percentile(ms, 95):9.2f}")
    overhead = (np.asarray(node.stats.latency["convert"]) + np.asarray(node.stats.latency["publish"])) * 1e3
    e2e = np.asarray(latencies) * 1e3
    print(f"{'outside predict':<14}{np.percentile(overhead, 50):9.2f}{np.percentile(overhead, 95):9.2f}")
    print(f"{'end to end':<14}{np.percentile(e2e, 50):9.2f}{np.percentile(e2e, 95):9.2f}")
    print(
        f"sustained {args.frames / elapsed:.1f} FPS (one frame in flight), processed {node.stats.processed}, dropped {node.stats.dropped}"
    )
    spinner.close()
    node.destroy_node()
    probe.destroy_node()
    rclpy.try_shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
