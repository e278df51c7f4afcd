"""launch/kitti.launch.py, read without launch_ros: executables, files and topic wiring exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

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
