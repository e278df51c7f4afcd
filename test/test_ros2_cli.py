"""What the real ROS 2 command line does with the package's parameters and launch arguments
(docs/ros2-verification.md): faults found by running `ros2 param` and `ros2 launch`, checked here with
the same rclpy code those tools call (rclpy.parameter, rclpy.parameter_client), no ros2cli needed."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rosutil import isolate_ros_domain, spinning, wait_for

isolate_ros_domain()

from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.parameter import get_parameter_value, parameter_dict_from_yaml_file, parameter_value_to_python  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402

from semseg_ros.errors import SemsegError  # noqa: E402
from semseg_ros.labels import LABEL_SETS  # noqa: E402
from semseg_ros.node_params import CLUSTER_MIN_POINTS_RANGE, CLUSTER_RADIUS_RANGE, NODES, parse_cluster_rules  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KITTI_YAML = ROOT / "config" / "kitti.yaml"


def as_cli_sends(text: str) -> ParameterMsg:
    """The Parameter message `ros2 param set NODE NAME TEXT` and `ros2 param load` build (rclpy's guess by YAML),
    serialized as the service request would be: raises where the real CLI dies with a traceback."""
    msg = ParameterMsg(name="p", value=get_parameter_value(text))
    serialize_message(msg)
    return msg


def string_values() -> list[tuple[str, str, str]]:
    """(node, parameter, value) for every string parameter: its default, its choices, its value in kitti.yaml."""
    shipped = yaml.safe_load(KITTI_YAML.read_text())
    values = []
    for node, params in NODES.items():
        for param in params:
            if isinstance(param.default, str):
                candidates = [
                    param.default,
                    *(param.choices or ()),
                    shipped[f"/**/{node}"]["ros__parameters"].get(param.name, param.default),
                ]
                values += [(node, param.name, value) for value in dict.fromkeys(candidates)]
    return values


@pytest.mark.parametrize(("node", "name", "value"), string_values())
def test_every_string_parameter_value_survives_ros2_param_set_and_load(node: str, name: str, value: str) -> None:
    """rclpy re-reads every value typed to `ros2 param set` or read back by `ros2 param load` as YAML; a JSON
    object (the old cluster_rules) came back as a dict and the CLI died with 'bad argument type'."""
    sent = as_cli_sends(value)
    assert sent.value.type == ParameterType.PARAMETER_STRING and sent.value.string_value == value, (node, name, value)


rule = st.fixed_dictionaries(
    {"class": st.sampled_from(sorted({c for s in LABEL_SETS.values() for c in s.classes}))},
    optional={
        "radius": st.floats(*CLUSTER_RADIUS_RANGE, allow_nan=False),
        "min_points": st.integers(*CLUSTER_MIN_POINTS_RANGE),
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(rule, min_size=1, max_size=6, unique_by=lambda r: r["class"]))
def test_any_list_of_cluster_rules_reaches_the_node_intact(rules: list[dict[str, Any]]) -> None:
    text = json.dumps(rules)
    sent = as_cli_sends(text)
    assert sent.value.type == ParameterType.PARAMETER_STRING and sent.value.string_value == text
    assert parse_cluster_rules(sent.value.string_value) == {r["class"]: {k: v for k, v in r.items() if k != "class"} for r in rules}


def test_cluster_rules_in_both_forms_and_what_is_refused() -> None:
    from semseg_ros.errors import SemsegError

    expected = {"car": {"radius": 0.5}, "person": {"min_points": 3}}
    assert parse_cluster_rules('[{"class": "car", "radius": 0.5}, {"class": "person", "min_points": 3}]') == expected
    assert parse_cluster_rules('{"car": {"radius": 0.5}, "person": {"min_points": 3}}') == expected  # files written for rcl
    assert parse_cluster_rules("") == {}
    for text, reason in (
        ('[{"class": "car"}, {"class": "car", "radius": 1}]', "more than one rule for car"),
        ('[{"radius": 1}]', 'every rule needs "class"'),
        ('[{"class": 5}]', 'every rule needs "class"'),
        ('[{"class": "car", "radius": 11}]', "car: radius 11"),
        ('[{"class": "car", "size": 1}]', 'car: expected {"radius"'),
        ("[5]", "expected a JSON list"),
        ('"car"', "expected a JSON list"),
    ):
        with pytest.raises(SemsegError, match=reason):
            parse_cluster_rules(text)


def dump(node_name: str, values: dict[str, Any], path: Path) -> Path:
    """A file as `ros2 param dump` writes it (ros2param/verb/dump.py: yaml.dump, default_flow_style=False)."""
    path.write_text(yaml.dump({f"/{node_name}": {"ros__parameters": values}}, default_flow_style=False))
    return path


def test_ros2_param_load_of_a_dump_of_the_shipped_parameters(ros: None, tmp_path: Path) -> None:
    """`ros2 param dump /fusion_node > f.yaml; ros2 param load /fusion_node f.yaml` on a live node: the dump of
    kitti.yaml's values failed to load (TypeError in rclpy) while cluster_rules was a JSON object."""
    from rclpy.node import Node
    from rclpy.parameter_client import AsyncParameterClient

    from semseg_ros.ros.fusion_node import FusionNode

    node = FusionNode(cli_args=["--ros-args", "--params-file", str(KITTI_YAML)])
    probe = Node("ros2cli_probe")
    try:
        with spinning(node, probe):
            client = AsyncParameterClient(probe, "fusion_node")
            assert client.wait_for_services(timeout_sec=10.0)
            names = client.list_parameters()
            assert wait_for(names.done, 10.0)
            listed = sorted(names.result().result.names)  # type: ignore[union-attr]
            got = client.get_parameters(listed)
            assert wait_for(got.done, 10.0)
            values = {n: parameter_value_to_python(v) for n, v in zip(listed, got.result().values, strict=True)}  # type: ignore[union-attr]
            path = dump("fusion_node", values, tmp_path / "dump.yaml")
            for parameter in parameter_dict_from_yaml_file(str(path)).values():
                serialize_message(parameter)  # the request `ros2 param load` sends
            values["cluster_radius"] = 0.75
            loaded = client.load_parameter_file(str(dump("fusion_node", values, path)))
            assert wait_for(loaded.done, 10.0)
            results = loaded.result().results  # type: ignore[union-attr]
            sent = list(parameter_dict_from_yaml_file(str(path)))  # the order load_parameter_file sends them in
            refused = {n: r.reason for n, r in zip(sent, results, strict=True) if not r.successful}
            read_only = {p.name for p in NODES["fusion_node"] if not p.live} | {"start_type_description_service"}
            # rclpy itself refuses every read-only parameter, even at its own value; nothing else may be refused
            assert set(refused) == read_only and all("read-only" in reason for reason in refused.values()), refused
            assert node.config.cluster_radius == 0.75 and node.stats.rejected_parameters == 0
    finally:
        node.destroy_node()
        probe.destroy_node()


# ---------------------------------------------------------------- params_file:= of the launch over kitti.yaml
def test_params_files_put_the_users_file_over_the_shipped_one(tmp_path: Path) -> None:
    from semseg_ros.ros.launcher import params_files

    mine = tmp_path / "my.yaml"
    mine.write_text("{}")
    assert params_files("", str(KITTI_YAML)) == [str(KITTI_YAML)]
    assert params_files(str(KITTI_YAML), str(KITTI_YAML)) == [str(KITTI_YAML)]
    assert params_files(str(mine), str(KITTI_YAML)) == [str(KITTI_YAML), str(mine)]
    launch = (ROOT / "launch" / "kitti.launch.py").read_text()
    assert "params_files(" in launch and "parameters=[*files, overrides[name]]" in launch


def test_a_params_file_of_a_few_keys_keeps_the_kitti_wiring(ros: None, tmp_path: Path) -> None:
    """`ros2 launch semseg_ros kitti.launch.py params_file:=my.yaml` with my.yaml setting model and use_sim_time
    only: the fusion node died ('calibration_source kitti_raw needs kitti_calib_dir') because my.yaml replaced
    kitti.yaml. The nodes now get kitti.yaml, my.yaml, then the launch arguments' overrides (rcl: later wins)."""
    from semseg_ros.ros.fusion_node import FusionNode
    from semseg_ros.ros.launcher import launch_overrides, params_files

    mine = tmp_path / "my.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "segmentation_node": {"ros__parameters": {"model": "synthetic_unet_mobilenet.pt", "use_sim_time": True}},
                "fusion_node": {"ros__parameters": {"use_sim_time": True, "slop": 0.08}},
            }
        )
    )
    for argument, sim in (("", True), ("false", False)):
        overrides = tmp_path / "overrides.yaml"
        overrides.write_text(yaml.safe_dump({"/fusion_node": {"ros__parameters": launch_overrides("", argument)["fusion_node"]}}))
        files = [*params_files(str(mine), str(KITTI_YAML)), str(overrides)]
        node = FusionNode(cli_args=["--ros-args", *[a for f in files for a in ("--params-file", f)]])
        try:
            assert node.config.calibration_source == "camera_info" and node.config.slop == 0.08
            assert node.get_parameter("use_sim_time").value is sim, argument
        finally:
            node.destroy_node()


def test_pip_only_launch_reads_the_shipped_file_first(tmp_path: Path) -> None:
    """`semseg launch kitti --params FILE`: the shipped kitti.yaml, then FILE (once if FILE is it), then the
    --ros-args; a node's own arguments (`--model`, `--calib-dir`) win over them all, in the check too."""
    from semseg_ros.ros.launcher import kitti_local_arguments, shipped_params
    from semseg_ros.ros.node_process import ros_arguments

    assert shipped_params().resolve() == KITTI_YAML.resolve()
    mine = tmp_path / "mine.yaml"
    mine.write_text("fusion_node:\n  ros__parameters:\n    calibration_source: kitti_rawx\n")
    extra = ["--ros-args", "-p", "slop:=0.1"]
    local = kitti_local_arguments(None, tmp_path)  # --calib-dir: calibration_source:=kitti_raw for fusion_node
    args = ros_arguments(mine, extra, first=[shipped_params()], local=local)
    assert args == ["semseg", "--ros-args", "--params-file", str(shipped_params()), "--ros-args", "--params-file", str(mine), *extra]
    assert ros_arguments(KITTI_YAML, [], first=[shipped_params()]).count("--params-file") == 1
    with pytest.raises(SemsegError, match="kitti_rawx"):  # without the node's own value the file's counts
        ros_arguments(mine, extra, first=[shipped_params()])


# ---------------------------------------------------------------- a player started next to a running stack
def test_a_player_started_beside_running_subscribers_delivers_the_first_frames(ros: None, tmp_path: Path) -> None:
    """`semseg play` in its own process, as next to `ros2 launch`: under the real launch it sent the first 17 of
    60 frames before discovery matched the nodes (segmentation_node's first_sequence 18). It now waits (at most
    --wait seconds, 3 by default; 60 here, where a loaded CI machine took longer than 3) for every topic's
    subscriber before the first message, and for their acks after the last."""
    import os
    import subprocess
    import sys

    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from semseg_ros.bags import TOPICS, kitti_to_bag
    from semseg_ros.synth import writers

    kitti_to_bag(writers.write_kitti_raw(tmp_path, frames=4, seed=6, width=320, height=96, progress=False), tmp_path / "bag")
    listener = Node("early_listener")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    images: list[Any] = []
    clouds: list[Any] = []
    listener.create_subscription(Image, TOPICS["image"], images.append, reliable)
    listener.create_subscription(PointCloud2, TOPICS["points"], clouds.append, reliable)
    try:
        with spinning(listener):
            played = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "semseg_ros",
                    "play",
                    str(tmp_path / "bag"),
                    "--topics",
                    TOPICS["image"],
                    TOPICS["points"],
                    "--wait",
                    "60",
                ],
                env={**os.environ, **isolate_ros_domain()},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert played.returncode == 0 and "no subscriber" not in played.stderr, played.stderr
            from semseg_ros.cli import DISCOVERY_WAIT_S
            from semseg_ros.ros.player import DISCOVERY_WAIT

            assert DISCOVERY_WAIT_S == DISCOVERY_WAIT  # the CLI's default is the player's
            assert wait_for(lambda: len(images) == 4 and len(clouds) == 4, timeout=5.0), [m.header.stamp.nanosec for m in images]
    finally:
        listener.destroy_node()


def test_package_xml_declares_every_ros_package_the_code_imports() -> None:
    """rosdep installs exec_depends only: rosgraph_msgs (the player's /clock) and rcl_interfaces (parameter
    descriptors) were imported but not declared. tf2_ros stays optional (calibration_source camera_info_tf)."""
    import ast
    import re

    ros = re.compile(r"^(rclpy|rcl_interfaces|ament_index_python|launch|launch_ros|\w+_msgs|\w+_interfaces|tf2_\w+)$")
    imported: set[str] = set()
    for path in [*(ROOT / "semseg_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            imported |= {name.split(".")[0] for name in names if ros.match(name.split(".")[0])}
    declared = set(re.findall(r"<exec_depend>([\w-]+)</exec_depend>", (ROOT / "package.xml").read_text()))
    assert {"rclpy", "rosgraph_msgs", "rcl_interfaces", "sensor_msgs"} <= imported
    assert imported - {"tf2_ros"} <= declared, imported - declared


@pytest.mark.parametrize("param", [p for params in NODES.values() for p in params if p.parse is not None], ids=lambda p: p.name)
def test_a_refusal_names_the_parameter_once(param: Any) -> None:
    """`ros2 param set /segmentation_node palette '[[1e400, 0, 0]]'` answered 'palette: palette: [inf, 0, 0] ...'."""
    for bad in ("[[1e400, 0, 0]]", "[5]", "{", '"x"'):
        reason = param.check(bad)
        if reason is not None:
            assert reason.startswith(f"{param.name}: ") and not reason.startswith(f"{param.name}: {param.name}"), reason
    assert NODES["segmentation_node"][[p.name for p in NODES["segmentation_node"]].index("palette")].check("[[1e400, 0, 0]]") == (
        "palette: [inf, 0, 0] is not [r, g, b] with integers 0-255"
    )


def test_the_real_launch_file_gives_the_nodes_kitti_yaml_then_the_users_file(tmp_path: Path) -> None:
    """kitti.launch.py's actions under the real launch / launch_ros (present on a full ROS 2 install and in
    the scratch venv of docs/ros2-verification.md; skipped here otherwise)."""
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (a full ROS 2 install has it)")
    import importlib.util

    from launch_ros.actions import Node as LaunchNode
    from launch_ros.utilities import evaluate_parameters

    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location("kitti_launch", ROOT / "launch" / "kitti.launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mine = tmp_path / "my.yaml"
    mine.write_text("segmentation_node:\n  ros__parameters:\n    model: synthetic_unet_mobilenet.pt\n")
    context = LaunchContext()
    context.launch_configurations.update({"bag": "", "model": "", "params_file": str(mine), "rviz": "false", "use_sim_time": "true"})
    nodes = [a for a in module.launch_setup(context, str(ROOT)) if isinstance(a, LaunchNode)]
    assert [n.node_executable for n in nodes] == ["segmentation_node", "fusion_node"]
    for node in nodes:
        evaluated = evaluate_parameters(context, node._Node__parameters)  # what launch_ros passes as --params-file
        assert [str(p) for p in evaluated[:2]] == [str(KITTI_YAML), str(mine)] and evaluated[2] == {"use_sim_time": True}
    context.launch_configurations["rviz"] = "true"
    with pytest.raises(RuntimeError, match="rviz:=true needs rviz2"):  # before any action exists
        module.launch_setup(context, str(ROOT))


def test_a_shutdown_between_the_ok_check_and_the_wait_is_a_clean_stop() -> None:
    """rclpy's SIGINT handler may shut the context down after `rclpy.ok()` and before the executor's wait:
    spin_once then raises RCLError, not ExternalShutdownException. A minimal node with our loop, stopped
    with SIGINT 25 times, ended 6 times with that traceback and exit code 1."""
    import subprocess
    import sys

    code = (
        "import rclpy\n"
        "from rclpy.node import Node\n"
        "from semseg_ros.ros.node_process import run_nodes\n"
        "stopped = []\n"
        "def done():\n"
        "    if not stopped:\n"
        "        stopped.append(rclpy.shutdown())  # the window: the loop has seen ok() and goes on to wait\n"
        "    return False\n"
        "raise SystemExit(run_nodes([lambda: Node('window')], done=done))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and "Traceback" not in completed.stderr, completed.stderr[-1500:]
    # only rcl's error on a shut-down context is a stop: another error at that moment still fails the process
    failing = code.replace("    return False\n", "    raise ValueError('a real bug')\n")
    completed = subprocess.run([sys.executable, "-c", failing], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1 and "ValueError: a real bug" in completed.stderr, completed.stderr[-1500:]


STOP_SCRIPT = (
    "import ctypes, sys, time\n"
    "from rclpy.node import Node\n"
    "from std_msgs.msg import String\n"
    "from semseg_ros.ros.node_process import run_nodes\n"
    "def make():\n"
    "    node = Node('loading_node')\n"
    "    print('loading', flush=True)\n"
    "    ctypes.CDLL(None).sleep(int(sys.argv[1]))  # C-level work, as a model load: no Python line runs meanwhile\n"
    "    node.create_publisher(String, 'after_load', 1)  # on a context the signal may have shut down\n"
    "    return node\n"
    "from semseg_ros import stop_signals\n"
    "with stop_signals.remembering(at_exit=True):  # as the entry points run\n"
    "    code = run_nodes([make, lambda: Node('second_node')], started=lambda nodes: print('started', flush=True))\n"
    "    print('returned', code, flush=True)\n"
    "    time.sleep(3.0)  # the process's own work after the nodes: a late Ctrl-C lands here\n"
    "raise SystemExit(code)\n"
)


@pytest.mark.parametrize(
    ("load_s", "first_at", "first", "second_at"),
    [
        (3, "loading", signal.SIGINT, None),  # while a node loads its model
        (3, "loading", signal.SIGTERM, None),
        (3, "loading", signal.SIGINT, "loading"),  # twice, at once
        (0, "started", signal.SIGINT, "returned"),  # the second after the stop: CI saw exit -2 here
        (0, "started", signal.SIGTERM, "returned"),
    ],
)
def test_a_signal_at_any_moment_is_a_quiet_stop_with_exit_0(
    load_s: int, first_at: str, first: signal.Signals, second_at: str | None
) -> None:
    """`ros2 launch` and the terminal both send SIGINT, at any interval, and a node may still be loading
    its model. Before, a KeyboardInterrupt raised wherever Python happened to be: a Ctrl-C that came after
    the stop sequence killed the process with SIGINT (exit -2, traceback; test_launch_file's Ctrl-C test
    in CI), one during the start gave exit 130 or rcl's error on a shut-down context (exit 2)."""
    import os
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", STOP_SCRIPT, str(load_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    sent_first = False
    for line in process.stdout:
        lines.append(line)
        if not sent_first and line.startswith(first_at):
            os.killpg(process.pid, first)
            sent_first = True
            if second_at == first_at:
                os.killpg(process.pid, signal.SIGINT)
            if second_at in (None, first_at):
                break
        elif sent_first and second_at is not None and line.startswith(second_at):
            os.killpg(process.pid, signal.SIGINT)
            break
    output = "".join(lines) + process.stdout.read()
    process.wait(timeout=60)
    assert process.returncode == 0 and "returned 0" in output and "Traceback" not in output and "error" not in output, output
    assert ("started" in output) == (first_at == "started"), output  # a stop during the start creates no more nodes


ENTRY_SCRIPT = (
    "import sys\n"
    "from semseg_ros import stop_signals\n"
    "stop_signals.remember()  # what the entry point does first\n"
    "print('remembered', flush=True)\n"
    "if sys.argv[1] == 'semseg':\n"
    "    from semseg_ros.__main__ import main\n"
    "    sys.argv[1:] = ['node', 'fusion']\n"
    "else:\n"
    "    from semseg_ros.ros import entry\n"
    "    main = getattr(entry, sys.argv.pop(1))\n"
    "sys.exit(main())\n"
)


@pytest.mark.parametrize(
    ("entry", "signals"),
    [
        ("segmentation_node", [(0.0, signal.SIGINT), (0.0, signal.SIGINT)]),  # twice, in the imports
        ("segmentation_node", [(1.5, signal.SIGINT), (0.05, signal.SIGINT)]),  # rclpy.init or the model load
        ("fusion_node", [(0.0, signal.SIGINT)] * 20),  # a burst in the start-up: exit -2 at interpreter exit before
        ("fusion_node", [(0.0, signal.SIGTERM)] * 20),  # the same with SIGTERM: exit -15 before
        ("fusion_node", [(0.4, signal.SIGTERM), (0.0, signal.SIGINT), (0.2, signal.SIGINT)]),
        ("semseg", [(0.0, signal.SIGINT)] * 20),  # `semseg node fusion`
    ],
)
def test_a_signal_while_a_node_process_starts_is_a_quiet_stop(entry: str, signals: list[tuple[float, int]]) -> None:
    """Regression: Ctrl-C in the first seconds of `segmentation_node` (importing torch, rclpy) raised
    KeyboardInterrupt there: a traceback and exit 130, which `ros2 launch` reports as a died process; a
    burst of signals in the start-up killed the process at interpreter exit (Python resets its handlers
    to the default action there). The entry points (semseg_ros.ros.entry, semseg_ros.__main__) now
    remember signals from their first line and leave them ignored at the end (semseg_ros.stop_signals)."""
    import os
    import subprocess
    import sys
    import time
    from importlib.metadata import entry_points

    names = ("segmentation_node", "fusion_node", "semseg")
    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name in names}
    assert scripts == {
        "segmentation_node": "semseg_ros.ros.entry:segmentation_node",
        "fusion_node": "semseg_ros.ros.entry:fusion_node",
        "semseg": "semseg_ros.__main__:main",
    }
    ros_args = [] if entry == "segmentation_node" else ["--ros-args", "-p", "calibration_source:=camera_info"]  # else calib files
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY_SCRIPT, entry, *ros_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "remembered\n"
    for delay, signum in signals:
        time.sleep(delay or 0.01)
        process.send_signal(signum)
    output = process.communicate(timeout=90)[0]
    assert process.returncode == 0 and "Traceback" not in output and "error" not in output.lower(), output
    assert os.environ.get("ROS_DOMAIN_ID")  # isolate_ros_domain: these nodes talk to no other test's


def test_a_signal_as_a_run_ends_by_itself_is_ignored() -> None:
    """Regression: `semseg launch kitti --bag B` (no --loop) ended by itself, printed its summary, and a
    Ctrl-C then killed it (exit -2): the stop put the KeyboardInterrupt handler back, and Python's exit puts
    the default action back. Under an entry point, signals stay ignored to the end; a library caller gets
    its own handlers back, and a signal that stopped one run does not stop the next (before: every later
    run_nodes returned at once and Ctrl-C stayed ignored)."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, time\n"
        "from rclpy.node import Node\n"
        "from semseg_ros import stop_signals\n"
        "from semseg_ros.ros.node_process import run_nodes\n"
        "def ends() -> int:\n"
        "    stopping = lambda: os.kill(os.getpid(), signal.SIGINT)  # in the stop sequence, before the summary\n"
        "    code = run_nodes([lambda: Node('ends_by_itself')], done=lambda: True, stopped=stopping)\n"
        "    print('returned', code, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # as the command finishes\n"
        "    time.sleep(0.3)\n"
        "    return code\n"
        "if sys.argv[1] == 'library':\n"
        "    stopped = run_nodes([lambda: Node('signalled')], started=lambda nodes: os.kill(os.getpid(), signal.SIGINT))\n"
        "    start = time.monotonic()  # the request stopped that run; it does not stop the next one\n"
        "    code = run_nodes([lambda: Node('library')], done=lambda: time.monotonic() - start > 0.5)\n"
        "    assert stopped == 0 and time.monotonic() - start > 0.5, time.monotonic() - start\n"
        "    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGINT)\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(1)\n"
        "    except KeyboardInterrupt:\n"
        "        print('KeyboardInterrupt', flush=True)\n"
        "    sys.exit(code)\n"
        "with stop_signals.remembering(at_exit=True):\n"
        "    code = ends()\n"
        "os.kill(os.getpid(), signal.SIGINT)  # during the interpreter's exit\n"
        "sys.exit(code)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code, "entry"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and completed.stdout == "returned 0\n" and not completed.stderr, completed
    completed = subprocess.run([sys.executable, "-c", code, "library"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and completed.stdout == "KeyboardInterrupt\n", completed  # Ctrl-C works again


def test_callbacks_in_flight_finish_before_the_executor_shuts_down(ros: None) -> None:
    """rclpy's executor.shutdown() destroys the guard condition a callback triggers when it ends, without
    waiting for it; a callback ending during the destruction segfaulted the soak's fusion_node (exit -11).
    Both ways this package stops an executor (run_nodes, spinning_in_background) let callbacks finish first."""
    import subprocess
    import sys
    import threading
    import time

    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    from semseg_ros.ros.node_process import spinning_in_background

    events: list[str] = []
    started = threading.Event()

    def slow() -> None:
        started.set()
        time.sleep(0.4)
        events.append("callback ended")

    node = Node("slow_callbacks")
    node.create_timer(0.05, slow)
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    real_shutdown = executor.shutdown
    executor.shutdown = lambda timeout_sec=None: (events.append("shutdown"), real_shutdown(timeout_sec))[1]  # type: ignore[method-assign]
    with spinning_in_background(executor):
        assert started.wait(10)
    assert events[-1] == "shutdown" and "callback ended" in events, events
    node.destroy_node()

    code = (
        "import threading, time\n"
        "from rclpy.executors import MultiThreadedExecutor\n"
        "from rclpy.node import Node\n"
        "from semseg_ros.ros.node_process import run_nodes\n"
        "events, started = [], threading.Event()\n"
        "real = MultiThreadedExecutor.shutdown\n"
        "MultiThreadedExecutor.shutdown = lambda self, timeout_sec=None: (events.append('shutdown'), real(self, timeout_sec))[1]\n"
        "def make():\n"
        "    node = Node('slow_callbacks')\n"
        "    node.create_timer(0.05, lambda: (started.set(), time.sleep(0.4), events.append('callback ended')))\n"
        "    return node\n"
        "code = run_nodes([make], done=started.is_set)\n"
        "print(events)\n"
        "raise SystemExit(code if events and events[-1] == 'shutdown' else 3)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr[-1500:]
