"""launch/kitti.launch.py, read without launch_ros: executables, files and topic wiring exist."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from semseg_ros.topics import KITTI_REMAPS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "kitti.launch.py"


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return ast.literal_eval(kw.value) if isinstance(kw.value, ast.Constant) else kw.value
    return None


def test_executables_exist_in_setup_py() -> None:
    tree = ast.parse(LAUNCH.read_text())
    scripts = re.findall(r'"([\w-]+)\s*=\s*[\w.]+:\w+"', (ROOT / "setup.py").read_text())
    nodes = calls(tree, "Node")
    ours = [n for n in nodes if keyword(n, "package") == "semseg_ros"]
    assert {keyword(n, "executable") for n in ours} == {"segmentation_node", "fusion_node"}
    assert all(keyword(n, "executable") in scripts for n in ours)
    assert {keyword(n, "package") for n in nodes} == {"semseg_ros", "rviz2"}
    for node in ours:  # the node names are the params-file sections
        assert keyword(node, "name") in yaml.safe_load((ROOT / "config" / "kitti.yaml").read_text())


def test_named_files_are_installed_and_arguments_declared() -> None:
    text = LAUNCH.read_text()
    tree = ast.parse(text)
    for folder, name in re.findall(r'os\.path\.join\(share, "(\w+)", "([\w.]+)"\)', text):
        assert (ROOT / folder / name).is_file(), f"{folder}/{name} is named by the launch file but not shipped"
    declared = {ast.literal_eval(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    used = {ast.literal_eval(c.args[0]) for c in calls(tree, "LaunchConfiguration")}
    assert used == declared == {"bag", "model", "params_file", "rviz", "use_sim_time"}


def test_rviz_config_shows_the_outputs() -> None:
    config = yaml.safe_load((ROOT / "config" / "kitti.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {
        KITTI_REMAPS["fusion_node"]["labelled_points"],
        KITTI_REMAPS["fusion_node"]["clusters"],
        KITTI_REMAPS["segmentation_node"]["overlay"],
    } <= topics
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "velo_link"


# ---------------------------------------------------------------- quiet, orderly shutdown of the pip-only runners
NOISE = re.compile(r"Traceback|KeyboardInterrupt|\[ERROR\]|never retrieved|context is invalid|InvalidHandle|Exception")


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from semseg_ros.bags import kitti_to_bag
    from semseg_ros.synth import writers

    root = tmp_path_factory.mktemp("launch_bag")
    kitti_to_bag(writers.write_kitti_raw(root, frames=3, seed=4, width=320, height=96, progress=False), root / "bag")
    return root / "bag"


def semseg(*args: str) -> subprocess.Popen[str]:
    from rosutil import isolate_ros_domain

    env = {**os.environ, **isolate_ros_domain(), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "semseg_ros", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_ctrl_c_on_a_looping_launch_is_quiet_and_exits_0(bag: Path, tiny_checkpoint: Path) -> None:
    """Ctrl-C reaches the whole process group, twice (`ros2 launch` forwards SIGINT, the terminal sends it too),
    while the worker, the player and fusion callbacks are busy: exit 0 and not one error line."""
    process = semseg(
        "launch", "kitti", "--bag", str(bag), "--model", str(tiny_checkpoint), "--loop", "--rate", "4", "--ros-args", "-p", "backend:=torch"
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while sum("ready:" in line for line in lines) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(4.0)  # a few loops of the bag through both nodes
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    reader.join(timeout=10)
    output = "".join(lines)
    assert sum("ready:" in line for line in lines) == 2, output
    assert process.returncode == 0 and not NOISE.search(output), output


def test_a_launch_whose_bag_ends_exits_0_quietly(bag: Path, tiny_checkpoint: Path) -> None:
    process = semseg("launch", "kitti", "--bag", str(bag), "--model", str(tiny_checkpoint), "--ros-args", "-p", "backend:=torch")
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0 and "ready:" in output and not NOISE.search(output), output
