"""Packaging: colcon builds an installable ROS 2 package; pip installs the same entry points."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def console_scripts() -> list[str]:
    text = (ROOT / "setup.py").read_text()
    block = re.search(r'"console_scripts":\s*\[(.*?)\]', text, re.S)
    assert block, "setup.py declares no console_scripts"
    return re.findall(r'"([\w-]+)\s*=\s*[\w.]+:\w+"', block.group(1))


def test_python_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "semseg_ros", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("semseg_ros ")
    assert "semseg" in console_scripts()


@pytest.mark.slow
def test_colcon_build_installs_a_ros_package(tmp_path: Path) -> None:
    colcon = shutil.which("colcon", path=str(BIN)) or shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (pip install colcon-common-extensions ros-jazzy-ament-package)")
    source = tmp_path / "src" / "semseg_ros"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "install", "log", "__pycache__", "*.egg-info", ".*_cache")
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([colcon, "build", "--base-paths", "src"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    share = tmp_path / "install" / "semseg_ros" / "share" / "semseg_ros"
    assert (share / "package.xml").is_file()
    for folder in ("launch", "config", "models"):
        expected = sorted(p.relative_to(ROOT / folder) for p in (ROOT / folder).rglob("*") if p.is_file())
        installed = sorted(p.relative_to(share / folder) for p in (share / folder).rglob("*") if p.is_file())
        assert expected and installed == expected, folder
    lib = tmp_path / "install" / "semseg_ros" / "lib" / "semseg_ros"
    for script in console_scripts():
        assert os.access(lib / script, os.X_OK), f"{script} missing from {lib}"

    check = (
        "source install/setup.bash && "
        f"'{sys.executable}' -c 'from ament_index_python.packages import get_package_share_directory as g; print(g(\"semseg_ros\"))' && "
        "install/semseg_ros/lib/semseg_ros/semseg --version"
    )
    out = subprocess.run(["bash", "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.split()
    assert Path(lines[0]) == share
    assert "semseg_ros" in out.stdout
