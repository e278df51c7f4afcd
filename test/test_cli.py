"""The `semseg` command's contract: every user error is one line `semseg COMMAND: error: MESSAGE` (exit 2),
inputs are checked before any work starts, and every option explains itself."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from semseg_ros.cli import build_parser, main, report_error

COMMANDS = sorted(
    next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices  # type: ignore[union-attr]
)


def semseg(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "semseg_ros", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def assert_one_error_line(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The whole of stderr is `semseg COMMAND: error: ...` on one line, and the exit status is 2."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"semseg {re.escape(command)}: error: \S.*", lines[0]), lines[0]
    assert result.returncode == 2, result
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_errors_are_one_line_with_a_help_hint(command: str) -> None:
    line = assert_one_error_line(semseg(command, "--no-such-option"), command)
    assert line.endswith(f"; see semseg {command} --help")  # (argparse names a missing required argument first)


def test_usage_errors_of_the_command_itself_are_one_line() -> None:
    for args in ([], ["no-such-command"]):
        result = semseg(*args)
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("semseg: error: "), result.stderr
        assert result.returncode == 2


def bad_inputs(tmp: Path) -> dict[str, list[str | Path]]:
    """For every subcommand, an invocation whose input is missing (all paths under `tmp`)."""
    missing = tmp / "missing"
    return {
        "synth": ["--out", tmp / "synth", "--width", "8"],
        "train": [missing / "train.yaml"],
        "summary": [missing / "train.yaml"],
        "eval": [missing / "model.pt"],
        "predict": ["--checkpoint", missing / "model.pt", "--input", tmp, "--out", tmp / "predicted"],
        "pack": [missing / "model.pt", tmp / "packed.pt"],
        "video": ["--checkpoint", missing / "model.pt", "--input", tmp, "--out", tmp / "video.mp4"],
        "export": ["--checkpoint", missing / "model.pt", "--out", tmp / "model.onnx"],
        "build-engine": [missing / "model.onnx"],
        "node": ["segmentation", "--params", missing / "kitti.yaml"],
        "kitti2bag": [missing / "drive", tmp / "bag"],
        "play": [missing / "bag"],
        "launch": ["kitti", "--bag", missing / "bag"],
        "demo": ["--model", missing / "model.pt", "--out", tmp / "demo"],
    }


def test_bad_inputs_cover_every_command(tmp_path: Path) -> None:
    assert sorted(bad_inputs(tmp_path)) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_input_is_one_line_naming_the_path_and_nothing_is_made(command: str, tmp_path: Path) -> None:
    line = assert_one_error_line(semseg(command, *bad_inputs(tmp_path)[command]), command)
    if command != "synth":
        assert str(tmp_path / "missing") in line
    # Checked before the work: no output written, no node started (nodes log "ready" on stderr).
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_errors_raised_inside_the_node_runner_are_in_the_command_style(tmp_path: Path) -> None:
    """play, launch and node run their nodes through ros/node_process.py, which printed `semseg: fatal: ...`."""
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "broken.mcap").write_bytes(b"not an mcap file")
    line = assert_one_error_line(semseg("play", tmp_path / "bag"), "play")
    assert "cannot open the bag" in line
    line = assert_one_error_line(semseg("launch", "kitti", "--bag", tmp_path / "bag"), "launch")  # before: after both nodes started
    assert "cannot open the bag" in line
    line = assert_one_error_line(semseg("node", "segmentation", "--ros-args", "-p", f"model:={tmp_path / 'nope.pt'}"), "node")
    assert str(tmp_path / "nope.pt") in line


def test_an_error_after_a_progress_bar_starts_on_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tqdm import tqdm

    bar = tqdm(total=10, desc="eval", leave=False)
    bar.update(3)
    report_error("semseg eval", "the data broke\n  at image 4")
    err = capsys.readouterr().err
    assert err.endswith("\nsemseg eval: error: the data broke at image 4\n"), repr(err)
    assert "3/10" in err.splitlines()[-2]  # the bar is left standing: it shows where the work stopped
    bar.close()


def test_eval_without_data_says_how_to_get_it(tmp_path: Path, tiny_checkpoint: Path) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"data": {"format": "cityscapes", "root": str(tmp_path / "nowhere")}}))
    line = assert_one_error_line(semseg("eval", config, "--checkpoint", tiny_checkpoint), "eval")
    assert str(tmp_path / "nowhere") in line
    assert "--set data.root=" in line and "--set data.format=" in line and "semseg synth --format cityscapes" in line


def test_eval_names_its_data_and_input_size(
    tmp_path: Path, tiny_checkpoint: Path, cityscapes_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"data": {"format": "cityscapes", "root": str(cityscapes_root)}}))
    args = ["eval", str(config), "--checkpoint", str(tiny_checkpoint), "--backend", "torch", "--device", "cpu"]
    assert main([*args, "--json", str(tmp_path / "m.json")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert (
        first
        == f"evaluating {tiny_checkpoint} on 3 images of {cityscapes_root} (cityscapes, split val) at network input 64x192 (height x width)"
    )
    stored = json.loads((tmp_path / "m.json").read_text())
    assert stored["data"] == {"root": str(cityscapes_root), "format": "cityscapes", "split": "val", "images": 3}
    assert stored["input_size"] == [64, 192]


def test_train_checks_its_data_and_files_before_building_anything(tmp_path: Path, cityscapes_root: Path) -> None:
    config = tmp_path / "train.yaml"
    out_dir = tmp_path / "run"
    config.write_text(yaml.safe_dump({"data": {"root": str(cityscapes_root)}, "train": {"out_dir": str(out_dir)}}))
    line = assert_one_error_line(semseg("train", config, "--set", f"train.init_weights={tmp_path / 'w.pt'}"), "train")
    assert line.endswith(f"train.init_weights {tmp_path / 'w.pt'}: not found")
    line = assert_one_error_line(semseg("train", config, "--set", f"data.root={tmp_path / 'nowhere'}"), "train")
    assert "--set data.root=" in line
    assert not out_dir.exists()


def choice_keys() -> dict[str, tuple[str, ...]]:
    """Every choice-valued training config key (Literal fields of every section, and data.label_set)."""
    import dataclasses
    from typing import Literal, get_args, get_origin, get_type_hints

    from semseg_ros.labels import LABEL_SETS
    from semseg_ros.train.config import Config

    keys = {"data.label_set": tuple(LABEL_SETS)}
    for section, section_type in get_type_hints(Config).items():
        hints = get_type_hints(section_type) if dataclasses.is_dataclass(section_type) else {}
        for name, hint in hints.items():
            if get_origin(hint) is Literal:
                keys[f"{section}.{name}"] = get_args(hint)
    return keys


def test_choice_keys_are_found() -> None:
    assert {"model.arch", "data.format", "data.label_set", "optim.name", "train.amp", "data.kitti_road_target"} <= set(choice_keys())


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_misspelt_choice_gets_the_closest_suggested_in_one_short_line(data: st.DataObject) -> None:
    from semseg_ros.errors import SemsegError
    from semseg_ros.train.config import load_config

    key = data.draw(st.sampled_from(sorted(choice_keys())))
    choices = choice_keys()[key]
    word = data.draw(st.sampled_from([c for c in choices if len(c) >= 4]))
    at = data.draw(st.integers(0, len(word) - 1))
    typo = word[:at] + data.draw(st.sampled_from("xqz")) + word[at + 1 :]
    assume(typo not in choices)
    with pytest.raises(SemsegError) as caught:
        load_config(None, [f"{key}={typo}"])
    message = str(caught.value)
    assert message.startswith(f"{key}: '{typo}' is not one of ") and "\n" not in message and len(message) < 200
    assert "did you mean" in message and repr(word) in message.split("did you mean", 1)[1]


@pytest.mark.parametrize(
    ("typo", "suggested"),
    [("resnet5", "'resnet50'"), ("mobilenetv2", "'mobilenet_v2'"), ("tu-mobilenetv3_large_10", "'tu-mobilenetv3_large_100'")],
)
def test_a_misspelt_encoder_gets_a_few_suggestions_not_the_list(typo: str, suggested: str) -> None:
    from semseg_ros.errors import SemsegError
    from semseg_ros.train.config import load_config

    with pytest.raises(SemsegError) as caught:
        load_config(None, [f"model.encoder={typo}"])
    message = str(caught.value)
    assert message.startswith(f"model.encoder: '{typo}' is not one of the ") and suggested in message.split("did you mean")[1]
    assert len(message) < 250 and message.count("'") <= 8  # the typo and at most three names


def test_a_far_off_encoder_gets_examples() -> None:
    from semseg_ros.errors import SemsegError
    from semseg_ros.train.config import load_config

    with pytest.raises(SemsegError, match=r"model.encoder: 'qqqq' is not one of the \d+ encoders .* \(e\.g\. resnet18, "):
        load_config(None, ["model.encoder=qqqq"])


def test_every_option_and_argument_has_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in [("semseg", parser), *subparsers.choices.items()]
        for action in sub._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []
    assert all(choice.help for choice in subparsers._choices_actions)  # the one-line summary of each command


WRITERS = {  # command: (arguments before --out, where the output lands in the parsed arguments, old spelling)
    "synth": ([], "out", None),
    "predict": (["--checkpoint", "m.pt", "--input", "in"], "output", "--output"),
    "video": (["--checkpoint", "m.pt", "--input", "in"], "out", None),
    "export": (["--checkpoint", "m.pt"], "onnx", "--onnx"),
    "build-engine": (["m.onnx"], "engine", "--engine"),
    "pack": (["m.pt"], "out_option", None),
    "kitti2bag": (["drive"], "out_option", None),
    "demo": ([], "out", None),
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_every_command_that_writes_takes_out(command: str) -> None:
    before, dest, old = WRITERS[command]
    parser = build_parser()
    assert getattr(parser.parse_args([command, *before, "--out", "X"]), dest) == Path("X")
    if old is not None:
        assert getattr(parser.parse_args([command, *before, old, "X"]), dest) == Path("X")


def test_pack_takes_its_output_once(tmp_path: Path, tiny_checkpoint: Path) -> None:
    assert main(["pack", str(tiny_checkpoint), "--out", str(tmp_path / "a.pt")]) == 0
    assert main(["pack", str(tiny_checkpoint), str(tmp_path / "b.pt")]) == 0
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    line = assert_one_error_line(semseg("pack", tiny_checkpoint), "pack")
    assert line.endswith("give the output path once, as OUT or --out OUT (got neither)")


@pytest.mark.parametrize("arch", ["unet", "fpn", "deeplabv3plus"])
def test_onnx_export_emits_no_tracer_warning(arch: str, tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The shipped UNet's three TracerWarnings were ours (a traced `all_outputs` flag, padding and resize
    branches); smp's FPN adds torch's group-norm size check, filtered around the export. Parity (which
    compares shapes too) holds for the untraced resize: every smp head returns logits at the input size."""
    import warnings

    import torch

    from semseg_ros.inference.export import export_onnx, parity_check

    checkpoint = tiny_checkpoint
    if arch != "unet":
        from semseg_ros.labels import get_label_set
        from semseg_ros.models.card import ModelCard
        from semseg_ros.models.checkpoint import save_checkpoint
        from semseg_ros.models.factory import ModelConfig, build_model

        config = ModelConfig(arch=arch, encoder="resnet18", fpn_channels=[16, 32] if arch == "fpn" else None)
        labels = get_label_set("road")
        checkpoint = tmp_path / f"{arch}.pt"
        save_checkpoint(
            checkpoint, build_model(config, labels.num_classes).eval(), ModelCard.build(config, labels, (64, 128), (0.5,) * 3, (0.25,) * 3)
        )
    for dynamic, argmax in ((False, False), (True, False), (False, True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = export_onnx(checkpoint, tmp_path / f"{dynamic}{argmax}.onnx", dynamic=dynamic, argmax=argmax)
        assert [str(w.message) for w in caught if issubclass(w.category, torch.jit.TracerWarning)] == []
        assert parity_check(checkpoint, path).label_agreement == 1.0


def test_export_command_prints_no_warnings(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = semseg("export", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "m.onnx")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"wrote {tmp_path / 'm.onnx'}: max |logit difference|")


@settings(max_examples=200, deadline=None)
@given(message=st.text())
def test_any_error_message_prints_as_one_line(message: str) -> None:
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        report_error("semseg eval", message)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semseg eval: error: ")
    assert lines[0].split() == ["semseg", "eval:", "error:", *" ".join(message.splitlines()).split()]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["demo", "--rate", "-1"], "--rate"),
        (["launch", "kitti", "--bag", "x", "--rate", "nan"], "--rate"),
        (["play", "x", "--rate", "0"], "--rate"),
        (["video", "--checkpoint", "m.pt", "--input", "d", "--out", "v.mp4", "--fps", "-3"], "--fps"),
        (["video", "--checkpoint", "m.pt", "--input", "d", "--out", "v.mp4", "--alpha", "1.5"], "--alpha"),
        (["predict", "--checkpoint", "m.pt", "--input", "d", "--out", "o", "--overlay", "--alpha", "2"], "--alpha"),
        (["build-engine", "m.onnx", "--workspace-gb", "inf"], "--workspace-gb"),
    ],
)
def test_out_of_range_numbers_are_usage_errors_before_any_work(args: list[str], option: str, tmp_path: Path) -> None:
    """A bad rate once rendered 50 demo frames and started both nodes before it was refused."""
    line = assert_one_error_line(semseg(*args, cwd=tmp_path), args[0])
    assert f"argument {option}" in line
    assert list(tmp_path.iterdir()) == []  # nothing rendered, written or started


def test_a_wrong_split_is_named_without_a_data_hint(tmp_path: Path, tiny_checkpoint: Path, cityscapes_root: Path) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"data": {"format": "cityscapes", "root": str(cityscapes_root)}}))
    line = assert_one_error_line(semseg("eval", config, "--checkpoint", tiny_checkpoint, "--split", "tset"), "eval")
    assert "split 'tset'" in line and "semseg synth" not in line and "data.root" not in line


def test_export_with_argmax_in_the_graph_reports_labels_only(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = semseg("export", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "m.onnx", "--argmax")
    assert result.returncode == 0, result.stderr
    assert "labels only (argmax in the graph), labels agree on" in result.stdout and "nan" not in result.stdout


@pytest.mark.parametrize("ros_args", [["-p", "slop:=[1,"], ["-p", "slop"], ["--bogus"]])
def test_malformed_ros_arguments_are_one_line(ros_args: list[str], tmp_path: Path) -> None:
    result = semseg("node", "fusion", "--ros-args", *ros_args, cwd=tmp_path)
    assert "bad ROS arguments" in assert_one_error_line(result, "node")


@pytest.mark.parametrize(
    ("ros_args", "reason"),
    [
        (["-r", "__ns:=/x/"], "namespace must not end with a '/'"),  # rcl takes the rule, the node refused it: a traceback
        (["-r", "__ns:=robot"], "namespace must be absolute"),
        (["-r", "fusion_node:__node:=1x"], "node name must not start with a number"),
    ],
)
def test_names_rcl_refuses_are_one_line(ros_args: list[str], reason: str, tmp_path: Path) -> None:
    result = semseg("node", "fusion", "--params", "kitti.yaml", "--ros-args", *ros_args, cwd=tmp_path)
    assert reason in assert_one_error_line(result, "node")


def test_a_node_rcl_refuses_to_create_is_one_line() -> None:
    code = (
        "import sys; from rclpy.node import Node; from semseg_ros.ros.node_process import run_nodes; "
        "sys.exit(run_nodes([lambda: Node('fusion_node', namespace='/x/')], ['semseg'], prog='semseg node'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("semseg node: error: cannot create the node: ") and result.stderr.count("\n") == 1


def test_a_params_section_that_matches_no_node_is_warned_about(tmp_path: Path) -> None:
    from semseg_ros.ros.node_process import ros_arguments

    params = tmp_path / "p.yaml"
    params.write_text("fusion_nod:\n  ros__parameters:\n    slop: 0.05\n")
    result = subprocess.run(
        [sys.executable, "-c", f"from semseg_ros.ros.node_process import ros_arguments; ros_arguments({str(params)!r}, [])"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        result.stderr.strip()
        == f"semseg: warning: {params}: fusion_nod: matches no semseg_ros node (/segmentation_node, /fusion_node); ignored here"
    )
    assert ros_arguments(Path("kitti.yaml"), [])[1:3] == ["--ros-args", "--params-file"]  # the shipped file: no warning


@pytest.mark.parametrize("value", ["abc", "1.5", "0", "-1"])
def test_integer_options_name_what_they_want(value: str, tmp_path: Path) -> None:
    """`--stop-after-epochs abc` said "invalid _positive value" (the name of our argparse type function)."""
    result = semseg("train", "x.yaml", "--stop-after-epochs", value, cwd=tmp_path)
    line = assert_one_error_line(result, "train")
    assert "argument --stop-after-epochs: must be a positive integer, got" in line and value in line and "_positive" not in line
