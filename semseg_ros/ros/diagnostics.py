"""One DiagnosticArray per node and period: counters, rates and latency percentiles as key/values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


def latency_values(latency: Mapping[str, Iterable[float]]) -> dict[str, str]:
    """`<stage>_ms_p50` and `<stage>_ms_p95` for every stage with samples (seconds in, ms out)."""
    values = {}
    for stage, samples in latency.items():
        ms = np.asarray(list(samples)) * 1e3
        if ms.size:
            values[f"{stage}_ms_p50"] = f"{np.percentile(ms, 50):.2f}"
            values[f"{stage}_ms_p95"] = f"{np.percentile(ms, 95):.2f}"
    return values


def diagnostics_message(node: Any, values: dict[str, str], problem: str | None, hardware_id: str) -> DiagnosticArray:
    """OK ("running") or WARN (`problem`) status named after the node, stamped now."""
    level = DiagnosticStatus.OK if problem is None else DiagnosticStatus.WARN
    status = DiagnosticStatus(level=level, name=f"semseg_ros: {node.get_name()}", message=problem or "running", hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array


class TransportGaps:
    """Messages lost in transport on one topic, from publication sequence numbers (MessageInfo).

    Each publisher numbers its messages 1, 2, 3 ...; a skipped number is a message DDS dropped before the
    subscriber saw it. Numbers are counted per publisher: by `publisher_gid` when MessageInfo has it, and
    otherwise (rclpy 7.1 in Jazzy passes only timestamps and sequence numbers) each number is attributed to
    the stream it continues exactly (last + 1), else to a new stream while fewer streams than matched
    publishers are known, else to the stream whose last number is nearest below it. Exact for any number of
    publishers without loss and for one publisher with loss; with several lossy publishers the split is an
    estimate. A number no stream can precede is a restarted publisher: that stream starts over."""

    def __init__(self) -> None:
        self.lost = 0
        self.streams: dict[Any, int] = {}  # publisher (GID or stream index) -> last sequence number
        self.first: int | None = None
        self.last: int | None = None

    def add(self, info: Mapping[str, Any], publishers: Callable[[], int]) -> None:
        """`info`: rclpy's MessageInfo dict; `publishers()`: matched publishers on the topic (asked only when needed)."""
        sequence = info.get("publication_sequence_number")
        if not isinstance(sequence, int):
            return
        self.first = sequence if self.first is None else self.first
        self.last = sequence
        gid = info.get("publisher_gid")
        if gid is not None:
            key: Any = bytes(gid) if isinstance(gid, list | tuple | bytes | bytearray) else gid
        else:
            key = self._stream_for(sequence, publishers)
        last = self.streams.get(key)
        if last is not None and sequence > last:
            self.lost += sequence - last - 1
        self.streams[key] = sequence

    def _stream_for(self, sequence: int, publishers: Callable[[], int]) -> int:
        for key, last in self.streams.items():
            if last == sequence - 1:
                return int(key)
        if len(self.streams) < max(publishers(), 1):
            return len(self.streams)
        below = {key: last for key, last in self.streams.items() if last < sequence}
        if below:
            return int(max(below, key=below.__getitem__))
        return int(min(self.streams, key=self.streams.__getitem__))  # restarted: starts over
