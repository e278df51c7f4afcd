"""Start nodes in one process: rclpy init, a multi-threaded executor, quiet orderly shutdown, fatal errors as one line."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.validate_namespace import validate_namespace
from rclpy.validate_node_name import validate_node_name

from semseg_ros import stop_signals
from semseg_ros.errors import SemsegError
from semseg_ros.paths import resolve_data_file

RCLError = _rclpy.RCLError  # what rcl's C calls raise (rclpy has no public name for it)
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def use_shipped_fastdds_profile() -> None:
    """Point Fast DDS at config/fastdds.xml (shared memory big enough for whole frames; docs/reliability.md)
    unless another RMW is chosen or a profiles file is already set. Call before the first node exists."""
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp" or any(os.environ.get(v) for v in PROFILE_VARIABLES):
        return
    try:
        os.environ[PROFILE_VARIABLES[0]] = str(resolve_data_file("fastdds.xml", "config"))
    except SemsegError:
        pass  # an install without the file: Fast DDS defaults


def _init_quietly(args: list[str] | None) -> None:
    """rclpy.init, with what rcl prints to stderr (C level) held back: on failure the exception says it
    again and the caller prints one line; on success it is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            rclpy.init(args=args)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        text = held.read()
    if text:
        sys.stderr.write(text.decode(errors="replace"))


def run_nodes(
    factories: Sequence[Callable[[], Any]],
    args: list[str] | None = None,
    started: Callable[[list[Any]], None] | None = None,
    done: Callable[[], bool] | None = None,
    prog: str | None = None,
    stopped: Callable[[], None] | None = None,
) -> int:
    """Create the nodes (start-up errors: one line `PROG: error: MESSAGE`, exit 2; PROG defaults to the
    executable's name) and spin them until shutdown (Ctrl-C, SIGTERM: exit 0, nothing printed), or until
    `done()` turns true (checked twice a second). `started(nodes)` runs once all exist, `stopped()` once they
    are gone, while Ctrl-C is still ignored.

    SIGINT or SIGTERM at any moment (semseg_ros.stop_signals: from the process's first line when started
    by an entry point), even while a node loads its model, is a quiet stop with exit 0. From the stop on,
    both are ignored: a second Ctrl-C (`ros2 launch` and the terminal both send one, at any interval)
    cannot cut the stop short. Under an entry point they stay ignored until the process ends; a library
    caller gets its handlers from before the call back on return."""
    use_shipped_fastdds_profile()
    with stop_signals.remembering():  # the entry points did already, before their imports; library callers here
        return _run(factories, args, started, done, prog or Path(sys.argv[0]).name, stopped)


def _run(
    factories: Sequence[Callable[[], Any]],
    args: list[str] | None,
    started: Callable[[list[Any]], None] | None,
    done: Callable[[], bool] | None,
    prog: str,
    stopped: Callable[[], None] | None,
) -> int:
    if stop_signals.requested():  # Ctrl-C while the process started: nothing to stop yet
        return 0
    try:
        _init_quietly(args)
    except Exception as exc:  # rclpy's RCLError for a malformed --ros-args (`-p slop:=[1,`, `--bogus`)
        print(f"{prog}: error: bad ROS arguments: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    # rclpy.init's own handler chains to stop_signals' and shuts the context down, which ends the loop below
    nodes: list[Any] = []
    executor = MultiThreadedExecutor()
    finished = False
    try:
        for factory in factories:
            if stop_signals.requested():
                break
            nodes.append(_create(factory))
        for node in nodes:
            executor.add_node(node)
        if started is not None and not stop_signals.requested():
            started(nodes)
        while rclpy.ok() and not stop_signals.requested() and not finished:
            executor.spin_once(timeout_sec=0.5)
            finished = done is not None and done()
    except SemsegError as exc:
        if not (stop_signals.requested() or not rclpy.ok()):  # else: a node refused by a context a signal shut down
            print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
    except ExternalShutdownException:
        pass
    except RCLError:
        if rclpy.ok():
            raise
        # rclpy's signal handler shut the context down between rclpy.ok() and the wait: spin_once raises
        # RCLError ("the given context is not valid") instead of ExternalShutdownException; a normal stop
    finally:
        stop(executor, nodes, stopped)
    return 0


def _create(factory: Callable[[], Any]) -> Any:
    """factory(); a node rcl refuses to create (a name or namespace it rejects, a wrong type for one of
    rclpy's own parameters) is a SemsegError, without the
    RuntimeWarning rclpy's failed constructor adds ("Failed to fini rosout publisher")."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            node = factory()
        except (RCLError, NameValidationException, ParameterException) as exc:  # rclpy refuses `use_sim_time: 1` here
            raise SemsegError(f"cannot create the node: {' '.join(str(exc).split())}") from None
    for warning in caught:  # the node exists: its warnings are the user's
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return node


def stop(executor: MultiThreadedExecutor, nodes: list[Any], stopped: Callable[[], None] | None = None) -> None:
    """Orderly and quiet: further Ctrl-C ignored (`ros2 launch` and the terminal both send SIGINT to the
    process group), our own threads stopped first, running callbacks finished, then nodes destroyed;
    `stopped()` runs next (a closing report), still with signals ignored (run_nodes decides what comes after)."""
    stop_signals.ignore()
    for node in nodes:
        if hasattr(node, "stop"):
            node.stop()  # worker and player threads: no publishing from them after this
    shut_down(executor)  # this thread was the one spinning, and no longer is
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown()
    if stopped is not None:
        stopped()


def shut_down(executor: Executor) -> None:
    """Shut `executor` down once nothing spins it any more: callbacks in flight finish first.

    Each callback triggers the executor's guard condition when it ends, and executor.shutdown() destroys
    that guard condition without waiting for them (rclpy 7.1: its wait is skipped). A callback ending during
    the destruction segfaulted in rcl_trigger_guard_condition (the soak's fusion_node, exit -11, about once
    in 20 stops; the kernel log named librcl's rcl_trigger_guard_condition in a pool thread).
    """
    pool = getattr(executor, "_executor", None)  # MultiThreadedExecutor's ThreadPoolExecutor
    if pool is not None:
        pool.shutdown(wait=True)
    executor.shutdown(timeout_sec=5.0)


@contextmanager
def spinning_in_background(executor: Executor) -> Iterator[threading.Thread]:
    """Spin `executor` on a daemon thread for the duration of the block, then stop in the safe order:
    the thread stops spinning, callbacks in flight finish, the executor shuts down (see `shut_down`).
    A shutdown of the context (SIGINT, SIGTERM) also ends the spinning."""
    stopping = threading.Event()

    def spin() -> None:
        while not stopping.is_set() and executor.context.ok():
            try:
                executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, RCLError):
                if executor.context.ok():
                    raise
                return

    thread = threading.Thread(target=spin, name="executor", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stopping.set()
        thread.join(timeout=10.0)
        shut_down(executor)


def ros_arguments(
    params: Path | None,
    extra: list[str],
    nodes: Sequence[str] = ("segmentation_node", "fusion_node"),
    first: Sequence[Path] = (),
    local: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """rclpy's global arguments: the params files `first` (e.g. the shipped kitti.yaml) and `params`, then
    `extra` (trailing --ros-args). Before anything starts they are checked as rcl and rclpy will apply them
    to `nodes` (with their node-level `local` cli_args): the names the remap rules give the nodes, with
    rclpy's validators; then each node's last value for each parameter (see node_params.check_sources).
    Errors: SemsegError (one line) for a name rcl refuses or a value a node would refuse."""
    from semseg_ros.node_params import NODES, check_sources

    files = [resolve_data_file(path, "config") for path in (*first, *([params] if params is not None else []))]
    files = [path for index, path in enumerate(files) if not any(path.samefile(seen) for seen in files[:index])]
    args = ["semseg", *(arg for path in files for arg in ("--ros-args", "--params-file", str(path))), *extra]
    local = local or {}
    names = {node: _checked_name(node, [*local.get(node, []), *args], check=node in nodes) for node in NODES}
    if len({names[node] for node in nodes}) < len(nodes):  # `-r __node:=x` renames every node of the process
        raise SemsegError(
            f"--ros-args: the remap rules name {' and '.join(nodes)} alike ({names[nodes[0]]}): rename each with NODE:__node:=NAME"
        )
    problems, notes = check_sources(
        _override_sources(args),
        names,
        {node: NODES[node] for node in nodes},
        local={node: _override_sources(local.get(node, [])) for node in nodes},
    )
    if problems:
        raise SemsegError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    for note in notes:  # `fusion_nod:` reaches no node, so no node would say so
        print(f"semseg: warning: {note}", file=sys.stderr)
    return args


def _checked_name(node: str, args: list[str], check: bool) -> str:
    """`node`'s fully qualified name under the remap rules of `args` (node-level ones first, as rcl looks
    them up); `check`: each part checked with rclpy's validators (SemsegError: what rcl would refuse)."""
    from semseg_ros.node_params import remapped_names

    namespace, name = remapped_names(args, [node])[node]
    for value, validate in ((namespace, validate_namespace), (name, validate_node_name)) if check else ():
        try:
            validate(value)
        except NameValidationException as exc:
            reason = str(exc).splitlines()[0].rstrip(": ")
            raise SemsegError(f"--ros-args: {reason}: {value!r} (from the remap rules, for {node})") from None
    return f"{namespace.rstrip('/')}/{name}"


def _override_sources(args: list[str]) -> list[Any]:
    """The parameter overrides in `args`, in order: each `--params-file` inside a --ros-args block (read as
    rcl reads it), each `-p [node:]name:=value`. Forms rcl itself refuses are left to its own message."""
    from semseg_ros import schema
    from semseg_ros.node_params import ParamsSource, ros_arg_pairs

    sources = []
    for arg, following in ros_arg_pairs(args):
        if arg == "--params-file" and Path(following).is_file():  # missing: rcl's error
            sources.append(ParamsSource(following, schema.read_yaml(following, ros_params=True)))
        elif arg in ("-p", "--param") and ":=" in following:
            target, _, text = following.partition(":=")
            node, _, key = target.rpartition(":")
            if not re.fullmatch(r"([A-Za-z_]\w*)?", node, re.ASCII) or not re.fullmatch(r"[A-Za-z_][\w.]*", key, re.ASCII):
                continue  # `*:x:=`, `/node:x:=`, `:=1`: rcl refuses them as it starts
            try:
                value = schema.parse_ros_value(text, f"--ros-args -p {following}")
            except SemsegError:
                continue
            if value is not None and not isinstance(value, dict):
                sources.append(ParamsSource("--ros-args -p", {node or "/**": {"ros__parameters": {key: value}}}))
    return sources
