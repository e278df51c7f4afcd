"""Delivery of real-size messages between two processes at 10 Hz, per subscription QoS and Fast DDS setting.

A publisher process offers what the bag player offers (reliable, keep last 10) and sends `--count`
messages at `--rate`; a subscriber process with the QoS under test counts the distinct ones it hears
(its callback only counts: the consumer keeps up). Payloads: a KITTI Velodyne sweep (120k points x 16 B,
1.9 MB PointCloud2), a KITTI colour image (1242x375 rgb8, 1.4 MB Image), a 64 kB cloud and (`image48`)
a 4000x4000 rgb8 image (48 MB).
Fast DDS settings (--transports): `default` (the library's), `shipped` (config/fastdds.xml, 64 MiB
shared-memory segments, in both processes), `sub_only` (config/fastdds.xml in the subscriber only: a
publisher outside the stack, such as a camera driver, with Fast DDS defaults).

    .venv/bin/python bench/qos_delivery.py [--count 50] [--rate 10] [--payloads cloud,image,small]
        [--subscriptions reliable:5,reliable:1,best_effort:5,best_effort:1] [--transports default,shipped,sub_only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = {"cloud": 120_000, "image": (375, 1242), "small": 4_000, "image48": (4000, 4000)}  # points or (rows, cols)


def make_message(payload: str) -> Any:
    import numpy as np
    from sensor_msgs.msg import Image, PointCloud2, PointField

    if payload.startswith("image"):
        rows, cols = PAYLOADS[payload]  # type: ignore[misc]
        msg = Image(height=rows, width=cols, encoding="rgb8", step=cols * 3)
        msg.data = np.random.default_rng(0).integers(0, 255, rows * cols * 3, dtype=np.uint8).tobytes()
        return msg
    points = int(PAYLOADS[payload])  # type: ignore[call-overload]
    msg = PointCloud2(height=1, width=points, point_step=16, row_step=16 * points, is_bigendian=False, is_dense=True)
    msg.fields = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(("x", "y", "z", "intensity"))
    ]
    msg.data = np.random.default_rng(0).random(points * 4, dtype=np.float32).tobytes()
    return msg


def run_role(role: str, payload: str, reliability: str, depth: int, count: int, rate: float) -> None:
    import rclpy
    from rclpy.node import Node

    from semseg_ros.ros.params import qos

    rclpy.init()
    node = Node(f"qos_bench_{role}")
    kind = type(make_message("image" if payload.startswith("image") else "small"))
    if role == "pub":
        msg = make_message(payload)
        publisher = node.create_publisher(kind, "payload", qos("reliable", 10))
        deadline = time.monotonic() + 20
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # discovery settles on both sides
        start = time.monotonic()
        for index in range(count):
            msg.header.stamp.sec = index
            publisher.publish(msg)
            time.sleep(max(0.0, start + (index + 1) / rate - time.monotonic()))
        time.sleep(2.0)  # reliable readers may still be catching up
    else:
        heard: set[int] = set()
        node.create_subscription(kind, "payload", lambda m: heard.add(m.header.stamp.sec), qos(reliability, depth))
        last, deadline = len(heard), time.monotonic() + 30 + count / rate
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if len(heard) != last:
                last, quiet_since = len(heard), time.monotonic()
            if heard and time.monotonic() - quiet_since > 3.0:
                break
        print(json.dumps({"heard": len(heard)}))
    node.destroy_node()
    rclpy.try_shutdown()


def measure(payload: str, subscription: str, transport: str, count: int, rate: float, domain: int) -> int:
    reliability, depth = subscription.split(":")
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    shipped = {**env, "FASTRTPS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds.xml")}
    common = [payload, reliability, depth, str(count), str(rate)]
    sub_env = shipped if transport in ("shipped", "sub_only") else env
    sub = subprocess.Popen([sys.executable, __file__, "--role", "sub", *common], env=sub_env, stdout=subprocess.PIPE, text=True)
    pub = subprocess.Popen([sys.executable, __file__, "--role", "pub", *common], env=shipped if transport == "shipped" else env)
    out, _ = sub.communicate(timeout=120 + count / rate)
    pub.wait(timeout=60)
    return int(json.loads(out.strip().splitlines()[-1])["heard"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("pub", "sub"))
    parser.add_argument("args", nargs="*")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--payloads", default="cloud,image,small")
    parser.add_argument("--subscriptions", default="reliable:5,reliable:1,best_effort:5,best_effort:1")
    parser.add_argument("--transports", default="default,shipped,sub_only")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    if args.role:
        payload, reliability, depth, count, rate = args.args
        run_role(args.role, payload, reliability, int(depth), int(count), float(rate))
        return
    rows = []
    domain = 100 + os.getpid() % 100
    print(f"{'payload':<8} {'subscription':<14} {'fast dds':<8} {'heard':>9} {'%':>6}")
    for transport in args.transports.split(","):
        for payload in args.payloads.split(","):
            for subscription in args.subscriptions.split(","):
                heard = measure(payload, subscription, transport, args.count, args.rate, domain)
                rows.append({"payload": payload, "subscription": subscription, "transport": transport, "heard": heard, "sent": args.count})
                print(
                    f"{payload:<8} {subscription:<14} {transport:<8} {heard:>4}/{args.count:<4} {100 * heard / args.count:>6.1f}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
