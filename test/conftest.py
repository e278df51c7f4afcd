"""Shared fixtures: small synthetic datasets in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from semseg_ros.synth import writers


@pytest.fixture(scope="session")
def cityscapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    writers.write_cityscapes(root, frames=3, seed=5, sequences=3, val_sequences=1, width=192, height=96, progress=False)
    return root


@pytest.fixture(scope="session")
def kitti_road_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kitti_road")
    writers.write_kitti_road(root, frames=5, seed=5, width=160, height=64, progress=False)
    return root


@pytest.fixture(scope="session")
def kitti_raw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kitti_raw")
    writers.write_kitti_raw(root, frames=5, seed=5, width=160, height=64, progress=False)
    return root
