"""Approximate-time pairing of two streams by header stamp (message_filters is not always installable).

Each stream keeps a bounded queue; when a message arrives, the closest-stamped message of the other
stream within `slop` seconds is paired with it and removed. Pairing goes by stamp, whatever the arrival
order: a message waits for its partner until its queue overflows (the oldest stamp goes first) or until
it is more than REORDER_WINDOW seconds older than the newest pair. Pairs are never further apart than
`slop`. A stamp more than REORDER_WINDOW older than its own stream's newest (a looped bag, a clock reset)
clears the queues.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def stamp_seconds(msg: Any) -> float:
    return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9


@dataclass
class SyncStats:
    pairs: int = 0
    unmatched: dict[str, int] = field(default_factory=dict)  # per stream name: messages dropped without a partner
    resets: int = 0


REORDER_WINDOW = 1.0  # seconds of stamps within which messages may arrive out of order


class ApproximateSync:
    """Pairs messages of the two named `streams` (e.g. ("points", "mask")); calls `callback(first, second)`
    for each pair, in the order the streams are named."""

    def __init__(self, callback: Callable[[Any, Any], None], streams: tuple[str, str], slop: float = 0.05, queue_size: int = 10):
        if len(set(streams)) != 2:
            raise ValueError(f"two distinct stream names needed, got {streams}")
        self.callback = callback
        self.streams = streams
        self.slop = slop
        self.queues: dict[str, list[tuple[float, Any]]] = {name: [] for name in streams}
        self.queue_size = queue_size
        self.stats = SyncStats(unmatched=dict.fromkeys(streams, 0))
        self.lock = threading.Lock()
        self.latest = dict.fromkeys(streams, float("-inf"))  # newest stamp per stream
        self.paired = float("-inf")  # newest stamp of a pair

    def add(self, stream: str, msg: Any) -> None:
        stamp = stamp_seconds(msg)
        pair = None
        with self.lock:
            if stamp < self.latest[stream] - REORDER_WINDOW:  # time went backwards: start over
                self._reset()
            self.latest[stream] = max(self.latest[stream], stamp)
            first, second = self.streams
            other = second if stream == first else first
            candidates = self.queues[other]
            best = min(range(len(candidates)), key=lambda i: abs(candidates[i][0] - stamp), default=None)
            if best is not None and abs(candidates[best][0] - stamp) <= self.slop:
                _, match = candidates.pop(best)
                pair = (msg, match) if stream == first else (match, msg)
                self.stats.pairs += 1
                self.paired = max(self.paired, stamp)
            else:
                queue = self.queues[stream]
                queue.append((stamp, msg))
                queue.sort(key=lambda item: item[0])
                while len(queue) > self.queue_size:
                    queue.pop(0)
                    self._count(stream)
            for name in self.streams:  # too old to be paired any more
                queue = self.queues[name]
                while queue and queue[0][0] < self.paired - REORDER_WINDOW:
                    queue.pop(0)
                    self._count(name)
        if pair is not None:
            self.callback(*pair)

    def _count(self, stream: str, count: int = 1) -> None:
        self.stats.unmatched[stream] += count

    def _reset(self) -> None:
        for queue in self.queues.values():
            queue.clear()
        self.latest = dict.fromkeys(self.streams, float("-inf"))
        self.paired = float("-inf")
        self.stats.resets += 1
