"""A pip-only `ros2 bag play`: publishes a bag's serialized messages with their recorded timing and QoS.

Reads sqlite3 and mcap bags with rosbags, publishes the raw CDR bytes (no re-serialisation),
optionally loops, scales the rate and publishes /clock for use_sim_time. Topics whose message
types are not importable here are reported and skipped (pip-only: /tf and /tf_static, as
tf2_msgs has no wheel); a bag that breaks off mid-way is played up to the break (an mcap file
cut anywhere, as a killed recorder or a partial copy leaves it, included).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from semseg_ros.bags import TruncatedMcapReader, open_bag
from semseg_ros.errors import SemsegError


def message_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class (ImportError/AttributeError when unavailable)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def qos_from(connection: Any) -> QoSProfile:
    """The recorded publisher QoS (reliability and durability), depth 10."""
    profiles = getattr(connection.ext, "offered_qos_profiles", None) or []
    reliable = durable = False
    if profiles:
        profile = profiles[0]
        reliable = getattr(profile.reliability, "name", "") == "RELIABLE"
        durable = getattr(profile.durability, "name", "") == "TRANSIENT_LOCAL"
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if durable else DurabilityPolicy.VOLATILE,
    )


DISCOVERY_WAIT = 3.0  # seconds a player waits for its topics' subscribers before the first message, for acks after the last


class BagPlayer(Node):
    """Plays `bag` on a background thread once started; `finished` is set when playback ends.

    `pace(topic)`, when set, is called before each message is published and may block: a consumer that
    must see every frame (the demo scores every one) holds the player back until it is ready. The
    recorded timing then sets the fastest pace, the consumer the actual one.
    """

    def __init__(
        self,
        bag: str | Path,
        rate: float = 1.0,
        loop: bool = False,
        clock: bool = False,
        topics: list[str] | None = None,
        discovery_wait: float = DISCOVERY_WAIT,
        **kwargs: Any,
    ):
        super().__init__("semseg_player", **kwargs)
        if not (0 < rate < float("inf")):  # NaN fails too
            raise SemsegError(f"--rate {rate}: must be a positive finite number")
        if not (0 <= discovery_wait < float("inf")):
            raise SemsegError(f"--wait {discovery_wait}: must be a finite number of seconds >= 0")
        self.discovery_wait = discovery_wait
        self.bag = Path(bag)
        self.reader = open_bag(self.bag)
        if isinstance(self.reader, TruncatedMcapReader):
            self.get_logger().warning(f"{bag}: the mcap file breaks off; playing the {self.reader.message_count} messages before the break")
        self.rate, self.loop = rate, loop
        self.publishers_by_id: dict[int, Any] = {}
        self.connections = []
        self.skipped: list[str] = []
        for connection in self.reader.connections:
            if topics and connection.topic not in topics:
                continue
            try:
                msg_type = message_class(connection.msgtype)
            except (ImportError, AttributeError, ValueError):
                self.skipped.append(f"{connection.topic} ({connection.msgtype})")
                continue
            self.publishers_by_id[connection.id] = self.create_publisher(msg_type, connection.topic, qos_from(connection))
            self.connections.append(connection)
        if self.skipped:
            self.get_logger().info(  # pip-only installs lack tf2_msgs (no wheel); a node that needs /tf says so itself
                f"not playing {', '.join(self.skipped)}: their message packages are not installed here (a full ROS 2 install has them)"
            )
        if not self.connections:
            raise SemsegError(f"{bag}: nothing to play (topics: {', '.join(c.topic for c in self.reader.connections) or 'none'})")
        self.clock_pub = self.create_publisher(Clock, "/clock", 10) if clock else None
        self.pace: Callable[[str], None] | None = None
        self.published = 0
        self.errors: list[str] = []
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="bag_player", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_for_subscribers(self, timeout: float | None = None) -> list[str]:
        """Block until every topic to be played has a subscriber, at most `timeout` seconds (or until `stop`);
        the topics still without one. Discovery between processes takes about 2 s here: a player started next
        to a running `ros2 launch` sent its first 17 frames of a 10 Hz bag to nobody before this wait."""
        deadline = time.monotonic() + (self.discovery_wait if timeout is None else timeout)
        while True:
            alone = [c.topic for c in self.connections if self.publishers_by_id[c.id].get_subscription_count() == 0]
            if not alone or time.monotonic() >= deadline or self._stop.wait(0.02):
                return alone

    def _play(self) -> None:
        try:
            alone = self.wait_for_subscribers()
            if alone:
                self.get_logger().info(f"no subscriber after {self.discovery_wait:g} s on {', '.join(alone)}; playing anyway")
            while not self._stop.is_set():
                self._play_once()
                if not self.loop:
                    break
            if not self._stop.is_set():  # the process may end next: reliable subscribers get the last frames first
                deadline = time.monotonic() + self.discovery_wait  # for all publishers together
                for publisher in self.publishers_by_id.values():
                    publisher.wait_for_all_acked(Duration(seconds=max(deadline - time.monotonic(), 0.0)))
        except Exception as exc:
            if not self._stop.is_set() and self.context.ok():  # a fault: recorded for the runner's exit status
                self.errors.append(f"{self.bag}: the player failed after {self.published} messages: {' '.join(repr(exc).split())[:200]}")
                self.get_logger().error(self.errors[-1])
            # else a signal shut the context down (rclpy's handler does at once, before stop() is called):
            # publishers are invalid from then on, in the wait for subscribers or acknowledgements too; a normal stop
        finally:
            self.finished.set()

    def _play_once(self) -> None:
        wall_start = time.monotonic()
        bag_start: int | None = None
        try:
            for connection, stamp, raw in self.reader.messages(connections=self.connections):
                if self._stop.is_set():
                    return
                if bag_start is None:
                    bag_start = stamp
                delay = wall_start + (stamp - bag_start) / 1e9 / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                if self.pace is not None:
                    self.pace(connection.topic)
                if self.clock_pub is not None:
                    clock = Clock()
                    clock.clock.sec, clock.clock.nanosec = stamp // 1_000_000_000, stamp % 1_000_000_000
                    self.clock_pub.publish(clock)
                self.publishers_by_id[connection.id].publish(bytes(raw))
                self.published += 1
        except Exception as exc:  # a truncated or corrupt bag: report, keep what was played
            if self._stop.is_set() or not self.context.ok():
                return  # shutting down: publishers are going away, nothing is wrong with the bag
            message = f"{self.bag}: playback stopped after {self.published} messages ({' '.join(str(exc).split())[:200]})"
            self.errors.append(message)
            self.get_logger().error(message)

    def raise_errors(self) -> None:
        """SemsegError with the first playback fault (a corrupt bag, a failure of the player), if any: what
        the runners turn into their one error line and exit status 2 once the nodes have stopped."""
        if self.errors:
            raise SemsegError(self.errors[0])

    @property
    def stopping(self) -> bool:
        """True once `stop` was called (a `pace` callback should stop waiting then)."""
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def destroy_node(self) -> None:
        self.stop()
        self.reader.close()
        super().destroy_node()
