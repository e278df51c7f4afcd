"""One DiagnosticArray per node and period: counters, rates and latency percentiles as key/values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
