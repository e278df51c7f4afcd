"""Shared fixtures: small synthetic datasets in the real on-disk formats, an rclpy context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from semseg_ros.synth import writers


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    """rclpy initialised for one test module, on a DDS domain of this process's own."""
    from rosutil import isolate_ros_domain

    isolate_ros_domain()
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


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


def make_checkpoint(path: Path, label_set_name: str = "cityscapes19", input_size: tuple[int, int] = (64, 192)) -> Path:
    """A small UNet-MobileNetV2 checkpoint (random weights, BatchNorm statistics settled on random batches)."""
    import torch

    from semseg_ros.labels import get_label_set
    from semseg_ros.models.card import ModelCard
    from semseg_ros.models.checkpoint import save_checkpoint
    from semseg_ros.models.factory import ModelConfig, build_model
    from semseg_ros.train.config import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    config = ModelConfig(arch="unet", encoder="mobilenet_v2", decoder_channels=[32, 16, 16, 8, 8])
    labels = get_label_set(label_set_name)
    model = build_model(config, labels.num_classes)
    with torch.no_grad():  # so that eval-mode outputs vary with the input
        for _ in range(3):
            model(torch.randn(4, 3, 64, 128))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model.eval(), ModelCard.build(config, labels, input_size, IMAGENET_MEAN, IMAGENET_STD))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def road_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("road_model") / "road.pt", "road", (64, 160))
