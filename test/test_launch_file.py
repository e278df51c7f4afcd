"""launch/kitti.launch.py, read without launch_ros: executables, files and topic wiring exist."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from semseg_ros.errors import SemsegError
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


def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text())


def arguments(tree: ast.Module) -> tuple[str, ...]:
    assign = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ARGUMENTS")
    return tuple(ast.literal_eval(assign.value))


def test_executables_exist_in_setup_py() -> None:
    tree = launch_tree()
    scripts = re.findall(r'"([\w-]+)\s*=\s*[\w.]+:\w+"', (ROOT / "setup.py").read_text())
    nodes = calls(tree, "Node")
    assert {keyword(n, "package") for n in nodes} == {"semseg_ros", "rviz2"}
    ours = next(n for n in ast.walk(tree) if isinstance(n, ast.For) and any(c in nodes for c in ast.walk(n)))
    names = ast.literal_eval(ours.iter)  # the loop that starts our nodes
    assert set(names) == {"segmentation_node", "fusion_node"} and set(names) <= set(scripts)
    for name in names:  # the node names are the params-file sections and the remap table's keys
        assert f"/**/{name}" in yaml.safe_load((ROOT / "config" / "kitti.yaml").read_text()) and name in KITTI_REMAPS


def test_named_files_are_installed_and_arguments_declared() -> None:
    text = LAUNCH.read_text()
    tree = launch_tree()
    named = re.findall(r'os\.path\.join\(share, "(\w+)", "([\w.]+)"\)', text)
    assert ("config", "fastdds.xml") in named and ("config", "kitti.rviz") in named
    for folder, name in named:
        assert (ROOT / folder / name).is_file(), f"{folder}/{name} is named by the launch file but not shipped"
    declared = {ast.literal_eval(c.args[0]): c for c in calls(tree, "DeclareLaunchArgument")}
    assert set(declared) == set(arguments(tree)) == {"bag", "model", "params_file", "rviz", "use_sim_time"}
    for name in ("model", "use_sim_time"):  # empty: the params file's value holds
        assert keyword(declared[name], "default_value") == "", name


def test_launch_arguments_override_the_params_file_only_when_given() -> None:
    from semseg_ros.ros.launcher import launch_overrides

    assert launch_overrides("", "") == {"segmentation_node": {}, "fusion_node": {}}
    assert launch_overrides("m.onnx", "True") == {
        "segmentation_node": {"use_sim_time": True, "model": "m.onnx"},
        "fusion_node": {"use_sim_time": True},
    }
    assert launch_overrides("", "false")["fusion_node"] == {"use_sim_time": False}
    with pytest.raises(SemsegError, match="use_sim_time:=maybe: expected true or false"):
        launch_overrides("", "maybe")


def test_the_params_file_holds_where_no_argument_is_given(ros: None, tmp_path: Path) -> None:
    """As launch_ros passes `parameters=[params_file, overrides]`: the user's file, then a file of the
    overrides for the node (rcl: later files win). use_sim_time from my.yaml holds unless given."""
    from semseg_ros.ros.fusion_node import FusionNode
    from semseg_ros.ros.launcher import launch_overrides

    mine = tmp_path / "my.yaml"
    mine.write_text(yaml.safe_dump({"fusion_node": {"ros__parameters": {"use_sim_time": True, "calibration_source": "camera_info"}}}))
    for given, expected in (("", True), ("false", False)):
        overrides = tmp_path / "overrides.yaml"
        overrides.write_text(yaml.safe_dump({"/fusion_node": {"ros__parameters": launch_overrides("", given)["fusion_node"]}}))
        node = FusionNode(cli_args=["--ros-args", "--params-file", str(mine), "--params-file", str(overrides)])
        assert node.get_parameter("use_sim_time").value is expected, given
        node.destroy_node()


def test_missing_rviz2_or_ros2_bag_is_named_before_anything_starts() -> None:
    """This venv has neither rviz2 nor rosbag2: the launch refuses with what to install."""
    from semseg_ros.ros.launcher import missing_for_launch

    assert missing_for_launch(False, "") == []
    missing = missing_for_launch(True, "/data/bag")
    assert len(missing) == 2 and "apt install ros-jazzy-rviz2" in missing[0] and "ros-jazzy-rosbag2" in missing[1]
    text = LAUNCH.read_text()
    assert text.index("missing_for_launch(") < text.index("Node(") and "raise RuntimeError" in text


def test_package_xml_declares_what_a_full_install_needs() -> None:
    depends = set(re.findall(r"<exec_depend>([\w-]+)</exec_depend>", (ROOT / "package.xml").read_text()))
    assert {"launch", "launch_ros", "ros2launch", "rviz2", "ros2bag", "rosbag2_storage_mcap", "rclpy"} <= depends


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
    # what the run did, in one line (before: only the ready lines, so a run that fused nothing looked the same)
    summary = re.search(
        r"played (\d+) messages; segmentation_node: (\d+) of (\d+) frames segmented \((\d+) dropped.*fusion_node: (\d+) clouds fused",
        output,
    )
    assert summary is not None and int(summary[2]) > 0 and int(summary[5]) > 0, output
    assert int(summary[2]) + int(summary[4]) == int(summary[3]), output  # the last frame left the node before the line


def corrupt_a_record_in_a_middle_chunk(mcap: Path) -> None:
    """Give the first record of the middle chunk a length of 10**12 bytes (MCAP records: opcode, u64 length,
    content; a chunk's content: 3 u64 times and sizes, u32 CRC, compression string, u64 records length).
    The summary stays intact, so the bag opens and the fault comes during playback."""
    data = bytearray(mcap.read_bytes())
    offset, chunks = 8, []
    while data[offset] != 0x0F:  # the footer
        if data[offset] == 0x06:
            chunks.append(offset)
        offset += 9 + struct.unpack_from("<Q", data, offset + 1)[0]
    content = chunks[len(chunks) // 2] + 9
    assert struct.unpack_from("<I", data, content + 28)[0] == 0  # uncompressed: the records are in the clear
    struct.pack_into("<Q", data, content + 32 + 8 + 1, 10**12)
    mcap.write_bytes(bytes(data))


def test_a_launch_whose_bag_is_corrupt_fails_in_one_line(bag: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Regression: a bag whose records break during playback (the summary intact, so it opens) ended
    `semseg launch` with exit 0 after an [ERROR] log line; `semseg play` of the same bag exits 2."""
    broken = tmp_path / "broken"
    shutil.copytree(bag, broken)
    corrupt_a_record_in_a_middle_chunk(next(broken.glob("*.mcap")))
    process = semseg("launch", "kitti", "--bag", str(broken), "--model", str(tiny_checkpoint), "--ros-args", "-p", "backend:=torch")
    output, _ = process.communicate(timeout=180)
    last = output.strip().splitlines()[-1]
    assert process.returncode == 2 and last.startswith(f"semseg launch: error: {broken}: playback stopped after"), output


def test_the_closing_line_counts_clouds_never_paired_and_a_bag_without_camera() -> None:
    """Clouds still waiting for a mask when the run ends count as without one (before: only those pushed out
    of the queue, so a run that fused 2 of 4 said 0), and a run that received no camera frame says so."""
    from types import SimpleNamespace

    from semseg_ros.ros.launcher import run_summary

    segmentation = SimpleNamespace(stats=SimpleNamespace(processed=0, received=0, dropped=0))
    fusion = SimpleNamespace(
        stats=SimpleNamespace(fused=0),
        sync=SimpleNamespace(stats=SimpleNamespace(unmatched={"points": 1}), queues={"points": [(1.0, None), (2.0, None)]}),
        config=SimpleNamespace(slop=0.05),
    )
    line = run_summary(segmentation, fusion, SimpleNamespace(published=20))
    assert "fusion_node: 0 clouds fused, 3 without a mask within slop 0.05 s" in line
    assert line.endswith("no camera frame reached segmentation_node (does the bag have /kitti/camera_color_left/image_raw?)")
