"""Approximate-time pairing of two streams by header stamp (message_filters is not always installable).

Each stream keeps a bounded queue; when a message arrives, the closest-stamped message of the other
stream within `slop` seconds is paired with it, both are removed, and older ones on both sides are
discarded as unmatched. Pairs are never further apart than `slop`. Stamps that jump backwards
(a looped bag, a clock reset) clear the queues.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def stamp_seconds(msg: Any) -> float:
    return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9


@dataclass
class SyncStats:
    pairs: int = 0
    unmatched: dict[str, int] | None = None
    resets: int = 0


class ApproximateSync:
    """Pairs messages of streams "a" and "b"; calls `callback(a_msg, b_msg)` for each pair."""

    def __init__(self, callback: Callable[[Any, Any], None], slop: float = 0.05, queue_size: int = 10):
        self.callback = callback
        self.slop = slop
        self.queues: dict[str, deque[tuple[float, Any]]] = {"a": deque(), "b": deque()}
        self.queue_size = queue_size
        self.stats = SyncStats(unmatched={"a": 0, "b": 0})
        self.lock = threading.Lock()
        self.latest = float("-inf")

    def add(self, stream: str, msg: Any) -> None:
        stamp = stamp_seconds(msg)
        pair = None
        with self.lock:
            if stamp < self.latest - 1.0:  # time went backwards: start over
                self._reset()
            self.latest = max(self.latest, stamp)
            other = "b" if stream == "a" else "a"
            candidates = self.queues[other]
            best = min(range(len(candidates)), key=lambda i: abs(candidates[i][0] - stamp), default=None)
            if best is not None and abs(candidates[best][0] - stamp) <= self.slop:
                _, match = candidates[best]
                self._discard(other, best + 1)  # the match and everything older than it
                self._discard_older(stream, stamp)
                pair = (msg, match) if stream == "a" else (match, msg)
                self.stats.pairs += 1
            else:
                queue = self.queues[stream]
                queue.append((stamp, msg))
                while len(queue) > self.queue_size:
                    queue.popleft()
                    self._count(stream)
        if pair is not None:
            self.callback(*pair)

    def _discard(self, stream: str, count: int) -> None:
        queue = self.queues[stream]
        for _ in range(count):
            queue.popleft()
        self._count(stream, count - 1)

    def _discard_older(self, stream: str, stamp: float) -> None:
        queue = self.queues[stream]
        while queue and queue[0][0] < stamp - self.slop:
            queue.popleft()
            self._count(stream)

    def _count(self, stream: str, count: int = 1) -> None:
        assert self.stats.unmatched is not None
        self.stats.unmatched[stream] += count

    def _reset(self) -> None:
        self.queues["a"].clear()
        self.queues["b"].clear()
        self.latest = float("-inf")
        self.stats.resets += 1
