"""Typed YAML configs: defaults, strict keys, type checks, overrides, safe loading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

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
    with pytest.raises(SemsegError, match=re.escape("train.input_size: expected a list (a YAML list: [64,128]), got str '64,128'")):
        load_config(None, ["train.input_size=64,128"])  # the form to write is named (before: only 'expected a list')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [1, 2]", "model: expected a mapping, got list"),
        ("train: {epochs: 2.5}", "train.epochs: expected an integer, got float 2.5"),
        ("train: {amp: yes}", "train.amp: True is not one of 'none', 'bf16', 'fp16'"),
        ("train: {input_size: [1, 2, 3]}", "train.input_size: expected 2 values, got 3"),
        ("augment: {hflip: '0.5'}", "augment.hflip: expected a number, got str '0.5'"),
        ("augment: {camera: 1.5}", "augment.camera: 1.5 is a probability; give a number from 0 to 1"),
        ("augment: {hflip: -0.1}", "augment.hflip: -0.1 is a probability; give a number from 0 to 1"),
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


# ---------------------------------------------------------------- bounded YAML
def laughs(levels: int, fan_out: int, kind: str) -> str:
    """A "billion laughs" YAML: each level refers fan_out times to the one before (fan_out ** levels nodes)."""
    lines = ["l0: &l0 {x: 1}" if kind != "list" else "l0: &l0 [1]"]
    for level in range(1, levels + 1):
        refs = [f"*l{level - 1}"] * fan_out
        if kind == "list":
            lines.append(f"l{level}: &l{level} [{', '.join(refs)}]")
        elif kind == "merge":
            lines.append(f"l{level}: &l{level} {{<<: *l{level - 1}, " + ", ".join(f"k{i}: {r}" for i, r in enumerate(refs)) + "}")
        else:
            lines.append(f"l{level}: &l{level} {{" + ", ".join(f"k{i}: {r}" for i, r in enumerate(refs)) + "}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["mapping", "merge", "list"])
def test_billion_laughs_is_refused_in_one_line_quickly(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: 735 bytes of nested mapping aliases expanded for 24 s to 2.7 GB and died with a MemoryError."""
    import time

    from semseg_ros.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text(laughs(9, 9, kind))
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    with pytest.raises(SemsegError, match="expands to more than 100000 nodes"):
        load_config(path)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "expands to more than" in err and err.count("\n") == 0
    with pytest.raises(SemsegError, match="--set"):
        schema.apply_overrides({}, ["data=" + laughs(9, 9, kind).replace("\n", ", ").join("{}")])
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "recursive alias"),
        ("a: &a {b: *a}\n", "recursive alias"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 64 levels"),
        ("a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n", "nested more than 64 levels"),
    ],
)
def test_recursive_and_deep_yaml_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SemsegError, match=message):
        schema.read_yaml(path)


def test_oversized_yaml_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * schema.MAX_YAML_BYTES + "\n")
    with pytest.raises(SemsegError, match=r"more than the \d+ a YAML config may have"):
        schema.read_yaml(path)


def expanded_nodes(levels: int, fan_out: int, kind: str) -> int:
    """YAML nodes of `laughs(...)` with every alias written out (a key and its value are a node each)."""
    size = 2 if kind == "list" else 3  # [1] or {x: 1}
    total = 1 + 1 + size  # the document's mapping, key l0, value
    for _ in range(levels):
        size = 1 + fan_out * (size if kind == "list" else 1 + size) + (1 + size if kind == "merge" else 0)
        total += 1 + size
    return total


@settings(max_examples=150, deadline=None)
@given(levels=st.integers(1, 12), fan_out=st.integers(1, 10), kind=st.sampled_from(["mapping", "merge", "list"]))
def test_aliases_load_as_pyyaml_loads_them_within_the_bound_and_are_refused_beyond(levels: int, fan_out: int, kind: str) -> None:
    import time

    text = laughs(levels, fan_out, kind)
    start = time.perf_counter()
    if expanded_nodes(levels, fan_out, kind) > schema.MAX_YAML_NODES:
        event("refused")
        with pytest.raises(SemsegError, match="expands to more than"):
            schema.parse_yaml(text)
    else:
        event("loaded")
        assert schema.parse_yaml(text) == yaml.safe_load(text)
    assert time.perf_counter() - start < 10  # loading or refusing, never the 24 s expansion of an unbounded load


@pytest.mark.parametrize("text", ["a: 2001-13-45\n", "a: " + "9" * 5000 + "\n", "x: 2001-02-30\n"])
def test_yaml_values_python_cannot_hold_are_one_line_errors(text: str) -> None:
    """Found by an adversary: PyYAML resolves these scalars, then Python raises ValueError (a traceback before)."""
    with pytest.raises(SemsegError, match="a value YAML cannot hold"):
        schema.parse_yaml(text)


@pytest.mark.parametrize(
    ("key", "value"), [("lr", "-1"), ("lr", ".nan"), ("lr", ".inf"), ("lr", "0"), ("weight_decay", "-0.1"), ("momentum", ".nan")]
)
def test_optimizer_numbers_are_checked(key: str, value: str) -> None:
    from semseg_ros.train.config import load_config

    with pytest.raises(SemsegError, match=f"optim.{key}: .* must be a finite number"):
        load_config(None, [f"optim.{key}={value}"])
