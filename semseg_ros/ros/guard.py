"""No input may end a node: every callback (subscription, timer, parameter change) runs behind a guard that
turns an exception into a counted, logged (throttled) rejection. While the context shuts down, failures
are expected (publishers, timers and handles go away) and pass silently."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import SetParametersResult


def shutting_down(node: Any) -> bool:
    return not node.context.ok()


def guarded(node: Any, callback: Callable[..., Any], what: str, count: Callable[[str], None]) -> Callable[..., Any]:
    """`callback` that never raises: an exception calls `count(what)` and logs once per 5 s.

    functools.wraps keeps the signature, so rclpy still passes MessageInfo to two-argument callbacks."""

    @functools.wraps(callback)
    def wrapper(*args: Any) -> Any:
        try:
            return callback(*args)
        except Exception as exc:
            if shutting_down(node):
                return None
            count(what)
            node.get_logger().error(f"{what}: {' '.join(repr(exc).split())[:300]}", throttle_duration_sec=5.0)
            return None

    return wrapper


def guarded_parameters(node: Any, callback: Callable[[list[Any]], SetParametersResult], count: Callable[[str], None]) -> Callable[..., Any]:
    """A parameter callback whose exceptions refuse the change (with the reason) instead of ending the node."""

    @functools.wraps(callback)
    def wrapper(updates: list[Any]) -> SetParametersResult:
        try:
            result = callback(updates)
        except Exception as exc:
            result = SetParametersResult(successful=False, reason=f"refused: {' '.join(repr(exc).split())[:300]}")
        if not result.successful:
            count("rejected_parameters")
            node.get_logger().warning(f"parameter change refused: {result.reason}", throttle_duration_sec=5.0)
        return result

    return wrapper
