"""Typed YAML configs: defaults, strict keys, type checks, overrides, safe loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from semseg_ros import schema
from semseg_ros.errors import SemsegError
from semseg_ros.train.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_round_trip() -> None:
    config = load_config(None)
    assert config.model.arch == "fpn" and config.train.input_size == (512, 1024)
    assert schema.load(Config, schema.dump(config)) == config


@pytest.mark.parametrize("path", sorted((ROOT / "config" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_training_configs_validate(path: Path) -> None:
    config = load_config(path)
    if path.name.startswith(("cityscapes_", "kitti_")):
        assert config.train.size_progression, "the seed experiments train with size progression"


def test_overrides_parse_yaml_values() -> None:
    config = load_config(
        None, ["optim.lr=0.5", "model.decoder_channels=[8, 8, 8, 8, 8]", "model.encoder_weights=null", "augment.hard_augs=true"]
    )
    assert (
        config.optim.lr == 0.5
        and config.model.decoder_channels == [8] * 5
        and config.model.encoder_weights is None
        and config.augment.hard_augs
    )
    with pytest.raises(SemsegError, match="expected key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(SemsegError, match="'lr' is not a section"):
        load_config(None, ["optim.lr=1", "optim.lr.x=2"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [1, 2]", "model: expected a mapping, got list"),
        ("train: {epochs: 2.5}", "train.epochs: expected an integer, got float 2.5"),
        ("train: {amp: yes}", "train.amp: must be one of 'none', 'bf16', 'fp16', got True"),
        ("train: {input_size: [1, 2, 3]}", "train.input_size: expected 2 values, got 3"),
        ("augment: {hflip: '0.5'}", "augment.hflip: expected a number, got str '0.5'"),
        ("- a list", "the top level must be a mapping"),
        ("data: {root: [unclosed", "not valid YAML"),
        ("!!python/object/apply:os.system ['echo pwned']", "not valid YAML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SemsegError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SemsegError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
