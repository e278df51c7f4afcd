"""Faults: training killed at random moments resumes exactly; corrupt model files and hostile inputs fail clearly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_training import tiny_config

from semseg_ros.errors import SemsegError
from semseg_ros.models.checkpoint import load_checkpoint
from semseg_ros.train.config import load_config
from semseg_ros.train.trainer import train

KILLS = int(os.environ.get("SEMSEG_FAULT_KILLS", "10"))


def _launch(config: Path, resume: bool) -> tuple[subprocess.Popen[str], threading.Event]:
    """`semseg train` in a subprocess; the event fires once it has finished its first epoch."""
    command = [sys.executable, "-m", "semseg_ros", "train", str(config)] + (["--resume"] if resume else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trained = threading.Event()

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("epoch "):
                trained.set()

    threading.Thread(target=watch, daemon=True).start()
    return process, trained


def test_training_killed_at_random_moments_resumes_to_the_uninterrupted_weights(tmp_path: Path, cityscapes_root: Path) -> None:
    overrides = {"epochs": 24, "size_progression": [], "input_size": [64, 96]}
    reference = load_config(tiny_config(tmp_path, cityscapes_root, "reference", **overrides))
    train(reference)
    config = tiny_config(tmp_path, cityscapes_root, "killed", **overrides)
    out = tmp_path / "killed"
    rng = random.Random(1234)
    kills, during_write, epochs_seen, restarts = 0, 0, [0], 0
    while True:
        process, trained = _launch(config, resume=(out / "last.pt").exists())
        restarts += 1
        if kills < KILLS:
            moment = rng.random()
            if moment < 0.3:  # anywhere, start-up included
                time.sleep(rng.uniform(0.2, 4.0))
            elif moment < 0.6:  # while a checkpoint is being written: as soon as its temporary file shows
                deadline = time.monotonic() + 60
                while not any(out.glob(".*.pt.*.tmp")) and time.monotonic() < deadline and process.poll() is None:
                    time.sleep(0.001)
            else:  # in the middle of training
                trained.wait(timeout=60)
                time.sleep(rng.uniform(0.0, 1.0))
            if process.poll() is None:
                during_write += any(out.glob(".*.pt.*.tmp"))
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                if (out / "last.pt").exists():  # whatever the moment, the checkpoint on disk is whole
                    epoch = load_checkpoint(out / "last.pt")["train_state"]["epoch"]
                    assert epoch >= epochs_seen[-1]
                    epochs_seen.append(epoch)
                continue
        assert process.wait(timeout=300) == 0
        break
    assert kills >= KILLS
    print(f"\nkills {kills}, during a checkpoint write {during_write}, restarts {restarts}, epochs at kills {epochs_seen[1:]}")
    assert not list(out.glob(".*.tmp")), "stale temporary checkpoints must be cleaned up on resume"
    final = load_checkpoint(out / "last.pt")
    expected = load_checkpoint(tmp_path / "reference" / "last.pt")
    assert final["train_state"]["epoch"] == 24
    for key, value in expected["model_state"].items():
        assert torch.allclose(final["model_state"][key].float(), value.float(), atol=1e-6), key
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == list(range(1, 24 * 2 + 1)), "history reads like one run: every step once"
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == list(range(1, 25)), "every epoch record once"
    best_epoch = max(epochs, key=lambda r: r["mIoU"])["epoch"]
    best = load_checkpoint(out / "best.pt")
    assert final["train_state"]["best_epoch"] == best["train_state"]["epoch"] == best_epoch, "best.pt is the best epoch last.pt records"
    for key, value in load_checkpoint(tmp_path / "reference" / "best.pt")["model_state"].items():
        assert torch.allclose(best["model_state"][key].float(), value.float(), atol=1e-6), key


def test_yaml_with_python_tags_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "config.yaml"
    path.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SemsegError, match="not valid YAML"):
        load_config(path)
    assert not marker.exists()
    assert yaml.safe_dump({"a": 1})  # the safe dumper is what the project writes with


def test_source_uses_only_safe_loaders_and_no_shell() -> None:
    """Static check over the package: no yaml.load, no unsafe torch.load, no shell=True, no pickle, and
    YAML parsed only through schema.parse_yaml (bounded alias expansion)."""
    import ast

    package = Path(__file__).parents[1] / "semseg_ros"
    problems = []
    for source in package.rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if name in ("yaml.load", "yaml.unsafe_load", "pickle.load", "pickle.loads"):
                    problems.append(f"{source.name}:{node.lineno} {name}")
                if name in ("yaml.safe_load", "yaml.safe_load_all", "yaml.full_load", "yaml.compose") and source.name != "schema.py":
                    problems.append(f"{source.name}:{node.lineno} {name} instead of schema.parse_yaml")
                if name == "torch.load" and keywords.get("weights_only") != "True":
                    problems.append(f"{source.name}:{node.lineno} torch.load without weights_only=True")
                if keywords.get("shell") == "True":
                    problems.append(f"{source.name}:{node.lineno} shell=True")
    assert not problems, problems


def test_output_paths_cannot_leave_the_output_folder(tmp_path: Path) -> None:
    from semseg_ros.eval.predict import _inside, output_name

    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)  # a folder link inside the output that points outside it
    assert _inside(out, output_name(Path("city/a.png"), "color")).parent == (out / "city").resolve()
    for hostile in (Path("../escape.png"), Path("/etc/escape.png"), Path("city/../../escape.png"), Path("link/escape.png")):
        with pytest.raises(SemsegError, match="would leave the output folder"):
            _inside(out, hostile)


def test_an_unwritable_onnx_cache_is_a_warning_and_inference_runs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A cache folder that cannot be created (here: below a regular file, which stops root too)."""
    import numpy as np

    from semseg_ros.inference.segmenter import Segmenter

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="cannot write the ONNX cache"):
        segmenter = Segmenter.from_path(tiny_checkpoint, backend="onnxruntime", cache_dir=blocker / "cache")
    assert segmenter.predict(np.zeros((40, 90, 3), np.uint8)).labels.shape == (40, 90)


def test_truncated_and_corrupt_model_files_are_one_line_cli_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from semseg_ros.inference.export import export_onnx

    onnx = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    data = tiny_checkpoint.read_bytes()
    broken = {
        "truncated.pt": data[: len(data) // 3],
        "flipped.pt": data[:1000] + bytes(b ^ 0xFF for b in data[1000:3000]) + data[3000:],
        "truncated.onnx": onnx.read_bytes()[: onnx.stat().st_size // 2],
        "garbage.engine": b"\x00" * 64,
    }
    for name, content in broken.items():
        (tmp_path / name).write_bytes(content)
        result = subprocess.run(
            [sys.executable, "-m", "semseg_ros", "predict", "--checkpoint", str(tmp_path / name), "--input", str(tmp_path), "--output", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and name in lines[0], (name, result.stderr[-500:])


# ---------------------------------------------------------------- decompression bombs
def png_bomb(side: int = 8000) -> bytes:
    """A PNG of side x side black pixels: about 60 kB for 8000 x 8000, 192 MB once decoded to RGB."""
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.zeros((side, side), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def test_image_bombs_are_refused_from_their_header_everywhere_images_are_read(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Before: a 62 kB 8000x8000 PNG on image/compressed grew the segmentation node by 5.5 GB."""
    from types import SimpleNamespace

    import cv2
    import numpy as np

    from semseg_ros.data.images import ImageTooLarge, read_label_png, read_rgb
    from semseg_ros.eval.predict import PredictFailures, run_predict
    from semseg_ros.inference.segmenter import Segmenter
    from semseg_ros.ros.conversions import compressed_to_rgb, image_to_rgb

    bomb = png_bomb()
    assert len(bomb) < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match=r"8000x8000 is 64\.0 MP, above the limit of 50 MP"):
        compressed_to_rgb(SimpleNamespace(format="png", data=bomb))
    raw = SimpleNamespace(height=8000, width=8000, step=24000, encoding="rgb8", is_bigendian=0, data=b"")
    with pytest.raises(ImageTooLarge, match="above the limit"):
        image_to_rgb(raw)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "bomb.png").write_bytes(bomb)
    for read in (read_rgb, read_label_png):
        with pytest.raises(ImageTooLarge, match="above the limit"):
            read(photos / "bomb.png")
    assert time.perf_counter() - start < 2, "refused from the header, not after decoding"

    small = cv2.imencode(".jpg", np.full((12, 20, 3), 128, np.uint8))[1].tobytes()  # the limit is a parameter
    assert compressed_to_rgb(SimpleNamespace(format="jpeg", data=small), 240).shape == (12, 20, 3)
    with pytest.raises(ImageTooLarge):
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=small), 239)
    (photos / "good.jpg").write_bytes(small)
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    with pytest.raises(PredictFailures, match=r"1 of 2 images .* skipped .*bomb\.png: 8000x8000") as failure:
        run_predict(segmenter, photos, tmp_path / "out", progress=False)
    assert [p.name for p in failure.value.written] == ["good.png"]


def test_image_bombs_in_a_drive_are_refused_by_kitti2bag(tmp_path: Path) -> None:
    """kitti2bag and the INT8/TensorRT calibration readers go through the same header check."""
    from semseg_ros.bags import kitti_to_bag
    from semseg_ros.data.images import ImageTooLarge
    from semseg_ros.synth import writers

    drive = writers.write_kitti_raw(tmp_path / "raw", frames=2, seed=0)
    (drive / "image_02" / "data" / "0000000001.png").write_bytes(png_bomb())
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match=r"0000000001.png: 8000x8000 is 64\.0 MP"):
        kitti_to_bag(drive, tmp_path / "bag")
    assert time.perf_counter() - start < 30
