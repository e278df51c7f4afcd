"""SIGINT and SIGTERM in the node processes: remembered from the first line of the process, never raised.

Python turns Ctrl-C into a KeyboardInterrupt wherever the main thread happens to be: importing torch,
loading a model, or halfway through the stop sequence. The process then ends with a traceback and exit
-2 or 130, and `ros2 launch` reports it as died, although the user only asked it to stop. `ros2 launch`
and the terminal both send SIGINT, at any moment and often twice. So the console scripts
(semseg_ros.ros.entry) call `remember()` before anything heavy is imported; `run_nodes` (semseg_ros.ros.node_process) looks at `requested()` and
stops in order. Standard library only: this module is imported before everything else.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested = threading.Event()
_original: dict[int, Any] = {}  # the handlers before the first remember(): restore() puts them back


def _remember(signum: int, frame: Any) -> None:
    _requested.set()


def remember() -> None:
    """From now on SIGINT and SIGTERM set `requested()` instead of raising or killing. Idempotent; only
    the main thread can install handlers, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        _original.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, _remember)


def requested() -> bool:
    """Whether SIGINT or SIGTERM arrived since `remember()`."""
    return _requested.is_set()


def ignore() -> None:
    """Ignore both signals (a stop is under way; a second Ctrl-C must not cut it short)."""
    for signum in _original:
        signal.signal(signum, signal.SIG_IGN)


def restore() -> None:
    """Put back the handlers from before the first `remember()` and forget any request."""
    for signum, handler in _original.items():
        signal.signal(signum, handler)
    _original.clear()
    _requested.clear()
