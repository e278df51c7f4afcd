"""SIGINT and SIGTERM in the node processes: remembered from the first line of the process, never raised.

Python turns Ctrl-C into a KeyboardInterrupt wherever the main thread happens to be: importing torch,
loading a model, or halfway through the stop sequence. The process then ends with a traceback and exit
-2 or 130, and `ros2 launch` reports it as died, although the user only asked it to stop. `ros2 launch`
and the terminal both send SIGINT, at any moment and often twice. So the node processes' entry points
(semseg_ros.ros.entry, and semseg_ros.__main__ for `semseg node|launch|play`) run inside
`remembering(at_exit=True)` before anything heavy is imported, and `run_nodes`
(semseg_ros.ros.node_process) looks at `requested()` and stops in order.

Why the end matters too: at interpreter exit Python resets every Python-level signal handler to the
default action, so a signal during the exit killed the process (exit -2 or -15). A process on its way
out therefore leaves both signals ignored. Standard library only: imported before everything else.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NODE_COMMANDS = ("node", "launch", "play")  # the `semseg` subcommands that run ROS nodes
_requested = threading.Event()
_original: dict[int, Any] = {}  # the handlers before remember() installed ours: restore() puts them back


def _remember(signum: int, frame: Any) -> None:
    _requested.set()


def remember() -> bool:
    """From now on SIGINT and SIGTERM set `requested()` instead of raising or killing. Returns whether this
    call installed the handlers (False: they were already, or this is not the main thread, where Python
    cannot install handlers)."""
    if threading.current_thread() is not threading.main_thread() or _original:
        return False
    for signum in SIGNALS:
        _original[signum] = signal.getsignal(signum)
        signal.signal(signum, _remember)
    return True


def requested() -> bool:
    """Whether SIGINT or SIGTERM arrived while remembered."""
    return _requested.is_set()


def ignore() -> None:
    """Ignore both signals from now on (a stop is under way, or the process is ending)."""
    for signum in _original:
        signal.signal(signum, signal.SIG_IGN)


def restore() -> None:
    """Put back the handlers from before `remember()` and forget any request."""
    for signum, handler in _original.items():
        signal.signal(signum, handler)
    _original.clear()
    _requested.clear()


@contextmanager
def remembering(at_exit: bool = False) -> Iterator[None]:
    """Signals remembered for the block. At its end, if `at_exit` (the block is the process's main, as in
    the entry points), both are ignored for the rest of the process: nothing is left to interrupt. Else
    the block that installed the handlers restores the earlier ones and forgets the request, which has
    stopped its run: a library caller gets its own Ctrl-C back and can run nodes again. Inner blocks leave
    the handlers to the outer one."""
    installed = remember()
    try:
        yield
    finally:
        if at_exit:
            ignore()
        elif installed:
            restore()
