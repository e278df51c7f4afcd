"""ament_python package setup: `colcon build` on a ROS 2 install, or `pip install .` in a venv."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "semseg_ros"
HERE = Path(__file__).parent


def share_files(folder: str) -> list[tuple[str, list[str]]]:
    """(install dir, files) pairs that mirror `folder` under share/semseg_ros, subfolders included."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{relative.parent.as_posix()}", []).append(relative.as_posix())
    return list(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch"),
        *share_files("config"),
        *share_files("models"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="semseg_ros maintainers",
    maintainer_email="maintainers@semseg-ros.dev",
    description="Semantic segmentation for ROS 2: training, TensorRT/PyTorch/ONNX inference and lidar fusion",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "semseg = semseg_ros.__main__:main",
            "segmentation_node = semseg_ros.ros.entry:segmentation_node",
            "fusion_node = semseg_ros.ros.entry:fusion_node",
        ],
    },
)
