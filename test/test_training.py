"""The trainer: checkpoints, exact resume, size progression, torchrun/DDP, config validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from semseg_ros.cli import main
from semseg_ros.errors import SemsegError
from semseg_ros.models.checkpoint import load_checkpoint, model_from_checkpoint
from semseg_ros.train.config import Config, load_config
from semseg_ros.train.trainer import train


def tiny_config(tmp_path: Path, root: Path, name: str = "run", **train_overrides: object) -> Path:
    config = {
        "data": {"format": "cityscapes", "root": str(root), "batch_size": 2, "val_batch_size": 2, "workers": 0},
        "model": {"arch": "unet", "encoder": "mobilenet_v2", "decoder_channels": [32, 16, 16, 8, 8]},
        "loss": {"ce": 1.0, "dice": 0.5},
        "optim": {"lr": 0.002, "warmup_steps": 2, "accumulate": 2},
        "train": {
            "epochs": 2,
            "input_size": [64, 128],
            "size_progression": [{"epoch": 1, "height": 96, "width": 160}],
            "out_dir": str(tmp_path / name),
            "log_images": 1,
            **train_overrides,
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def history(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "history.jsonl").read_text().splitlines()]


def test_training_writes_checkpoints_logs_and_a_self_contained_model(tmp_path: Path, cityscapes_root: Path) -> None:
    config = load_config(tiny_config(tmp_path, cityscapes_root))
    metrics = train(config)
    out = Path(config.train.out_dir)
    assert metrics["epoch"] == 2 and 0 <= metrics["mIoU"] <= 1 and set(metrics["iou"]) >= {"road", "sky"}
    for name in ("last.pt", "best.pt", "config.yaml", "history.jsonl"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    steps = [r for r in history(out) if r["event"] == "step"]
    assert len(steps) == 4 and all(r["loss"] > 0 for r in steps)  # 3 batches, accumulate 2 -> 2 steps per epoch
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["card"]["input_size"] == [64, 128] and checkpoint["card"]["classes"][0] == "road"
    assert checkpoint["train_state"]["epoch"] == 2
    model, _ = model_from_checkpoint(out / "last.pt")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 128)).shape == (1, 19, 64, 128)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 2


def test_resume_continues_exactly(tmp_path: Path, cityscapes_root: Path) -> None:
    straight = load_config(tiny_config(tmp_path, cityscapes_root, "straight"))
    train(straight)
    interrupted = load_config(tiny_config(tmp_path, cityscapes_root, "interrupted"))
    train(interrupted, stop_after_epochs=1)
    assert load_checkpoint(Path(interrupted.train.out_dir) / "last.pt")["train_state"]["epoch"] == 1
    train(interrupted, resume=True)
    first = [r for r in history(Path(straight.train.out_dir)) if r["event"] == "step"]
    second = [r for r in history(Path(interrupted.train.out_dir)) if r["event"] == "step"]
    assert len(first) == len(second) == 4
    for a, b in zip(first, second, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7) and a["lr"] == b["lr"]
    final_a = load_checkpoint(Path(straight.train.out_dir) / "last.pt")["model_state"]
    final_b = load_checkpoint(Path(interrupted.train.out_dir) / "last.pt")["model_state"]
    for key in final_a:
        assert torch.allclose(final_a[key].float(), final_b[key].float(), atol=1e-6), key


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path: Path, cityscapes_root: Path) -> None:
    with pytest.raises(SemsegError, match="no checkpoint at"):
        train(load_config(tiny_config(tmp_path, cityscapes_root, "fresh")), resume=True)


def test_size_progression_picks_the_stage() -> None:
    config = load_config(
        None,
        [
            "train.input_size=[512,1024]",
            "train.size_progression=[{epoch: 0, height: 256, width: 512}, {epoch: 5, height: 512, width: 1024}]",
        ],
    )
    assert [config.crop_size(e) for e in (0, 4, 5, 9)] == [(256, 512), (256, 512), (512, 1024), (512, 1024)]
    assert load_config(None).crop_size(3) == (512, 1024)


@pytest.mark.slow
def test_torchrun_two_processes_keep_parameters_identical(tmp_path: Path, cityscapes_root: Path, tiny_checkpoint: Path) -> None:
    """Two DDP processes (gloo), each distilling from its own copy of a frozen teacher."""
    config = tiny_config(tmp_path, cityscapes_root, "ddp", epochs=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    distill = ["--set", f"distill.teacher={tiny_checkpoint}", "--set", "distill.pair=0.5", "--set", "distill.pair_grid=[2,4]"]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29577", "-m", "semseg_ros", "train", str(config), "--set", "data.batch_size=1", *distill],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checksums = sorted(line.split("checksum ")[1] for line in result.stdout.splitlines() if "parameter checksum" in line)
    assert len(checksums) == 2 and checksums[0] == checksums[1], result.stdout
    assert (tmp_path / "ddp" / "last.pt").is_file()
    steps = [json.loads(line) for line in (tmp_path / "ddp" / "history.jsonl").read_text().splitlines() if '"step"' in line]
    assert steps and all(s["kd_pixel"] > 0 and s["kd_pair"] > 0 for s in steps)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epcohs=3", "train.epcohs: unknown key (did you mean 'epochs'?)"),
        ("optim.lr=fast", "optim.lr: expected a number, got str 'fast'"),
        ("model.arch=vgg", "model.arch: 'vgg' is not one of 'unet', 'fpn'"),
        ("train.size_progression=[{epoch: 0, height: 8, width: 8}]", "at least 32"),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, cityscapes_root: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    assert main(["train", str(tiny_config(tmp_path, cityscapes_root)), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_missing_dataset_is_a_clear_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tiny_config(tmp_path, tmp_path / "nowhere"))]) == 2
    assert "not a Cityscapes root" in capsys.readouterr().err


def test_init_weights_copies_matching_tensors_and_keeps_a_new_head_random(
    tmp_path: Path, kitti_road_root: Path, tiny_checkpoint: Path
) -> None:
    from semseg_ros.train.trainer import Trainer

    path = tiny_config(tmp_path, kitti_road_root, "finetune", init_weights=str(tiny_checkpoint))
    config = yaml.safe_load(path.read_text())
    config["data"].update({"format": "kitti-road", "label_set": "road", "val_every_nth": 3})
    path.write_text(yaml.safe_dump(config))
    trainer = Trainer(load_config(path))
    source = load_checkpoint(tiny_checkpoint)["model_state"]
    own = trainer.model.state_dict()
    encoder_keys = [k for k in own if ".encoder." in k]
    assert encoder_keys and all(torch.equal(own[k], source[k]) for k in encoder_keys)
    head = [k for k in own if "segmentation_head" in k and k.endswith("weight")]
    assert head and all(own[k].shape != source[k].shape for k in head)  # 19 classes there, 2 here: left as built
    with pytest.raises(SemsegError, match="no tensor matches"):
        bad = yaml.safe_load(path.read_text())
        bad["model"] = {"arch": "fpn", "encoder": "tu-mobilenetv3_small_100", "fpn_channels": [16, 32]}
        path.write_text(yaml.safe_dump(bad))
        Trainer(load_config(path))


class Killed(BaseException):
    """Stands for SIGKILL at one moment of a run: nothing after it happens (the files stay as they are)."""


def _assert_same_run(out: Path, reference: Path) -> None:
    """history.jsonl holds every step and epoch once, as the uninterrupted run did, and best.pt the best epoch."""
    ours, theirs = history(out), history(reference)
    for event, key in (("step", "loss"), ("epoch", "train_loss")):
        got = [(r[event], r[key]) for r in ours if r["event"] == event]
        want = [(r[event], r[key]) for r in theirs if r["event"] == event]
        assert [i for i, _ in got] == [i for i, _ in want], f"{event} records"
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6, abs=1e-7), f"{event} values"
    epochs = [r for r in theirs if r["event"] == "epoch" and "mIoU" in r]
    best_epoch = max(epochs, key=lambda r: r["mIoU"])["epoch"]  # the first of equal maxima, as `>` keeps it
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    assert last["train_state"]["best_epoch"] == best["train_state"]["epoch"] == best_epoch
    expected = load_checkpoint(reference / "best.pt")["model_state"]
    for key, value in expected.items():
        assert torch.allclose(best["model_state"][key].float(), value.float(), atol=1e-6), key


@pytest.mark.slow
def test_a_kill_after_any_write_of_a_run_loses_and_repeats_nothing(
    tmp_path: Path, cityscapes_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of a 2-epoch run in turn is the last one before a kill; restarts resume when last.pt exists.

    Before: a kill before the first checkpoint and a fresh start logged step 1 twice; a kill while best.pt
    was written left last.pt claiming the new best, no epoch record and best.pt never written."""
    from semseg_ros.train import trainer as trainer_module

    overrides = {"epochs": 2, "size_progression": [], "input_size": [64, 96], "val_every": 2, "log_images": 0, "max_steps_per_epoch": 2}

    def config_for(name: str) -> Config:  # 2 batches, one optimizer step per epoch
        return load_config(tiny_config(tmp_path, cityscapes_root, name, **overrides), ["optim.accumulate=2"])

    reference = tmp_path / "reference"
    writes: list[str] = []
    kill_after: list[int] = [-1]

    def counted(name: str, function: Callable[..., None]) -> Callable[..., None]:
        def write(*args: object, **kwargs: object) -> None:
            function(*args, **kwargs)
            writes.append(name)
            if len(writes) == kill_after[0]:
                raise Killed(name)

        return write

    monkeypatch.setattr(trainer_module.Trainer, "_log_line", counted("history", trainer_module.Trainer._log_line))
    monkeypatch.setattr(trainer_module, "save_checkpoint", counted("checkpoint", trainer_module.save_checkpoint))
    if hasattr(trainer_module, "_copy_atomic"):
        monkeypatch.setattr(trainer_module, "_copy_atomic", counted("checkpoint", trainer_module._copy_atomic))
    train(config_for("reference"))
    total = len(writes)
    assert total >= 7  # 2 steps, 2 epoch records, 2 last.pt, 1 best.pt
    for kill in range(1, total + 1):
        name = f"killed{kill}"
        config = config_for(name)
        writes.clear()
        kill_after[0] = kill
        with pytest.raises(Killed):
            train(config)
        kill_after[0] = -1
        train(config, resume=(tmp_path / name / "last.pt").exists())
        _assert_same_run(tmp_path / name, reference)


def test_train_splits_fold_val_into_training(tmp_path: Path, cityscapes_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`data.train_splits: [train, val]` trains on both splits' images (once each); val is still scored, but
    chooses no best.pt (before: best.pt was chosen on images the network trained on)."""
    from semseg_ros.data.datasets import build_dataset
    from semseg_ros.train.trainer import Trainer

    path = tiny_config(tmp_path, cityscapes_root, "trainval")
    config = yaml.safe_load(path.read_text())
    config["data"]["train_splits"] = ["train", "val"]
    path.write_text(yaml.safe_dump(config))
    folded = load_config(path)
    train_images = [s.image for s in build_dataset(folded.data, "train").samples]
    val_images = [s.image for s in build_dataset(folded.data, "val").samples]
    trainer = Trainer(folded)
    assert [s.image for s in trainer.train_set.samples] == train_images + val_images
    assert len(trainer.val_set) == len(val_images)
    trainer.fit(stop_after_epochs=1)
    out = Path(folded.train.out_dir)
    assert (out / "last.pt").is_file() and not (out / "best.pt").exists()  # val figures are training images: last.pt is the model
    from semseg_ros.cli import main

    capsys.readouterr()
    assert main(["eval", str(path), "--backend", "torch"]) == 0  # the config's model is last.pt (best.pt: not found before)
    assert f"evaluating {out / 'last.pt'}" in capsys.readouterr().out
    assert main(["eval", str(path), "--backend", "torch", "--set", "data.train_splits=[train]"]) == 2  # the split forgotten
    assert f"pass --checkpoint {out / 'last.pt'}" in capsys.readouterr().err
    # The folded run resumed without val: the network has seen val, so its next val epoch chooses no best.pt.
    unfolded = Trainer(load_config(path, ["data.train_splits=[train]"]), resume=True)
    assert "val was in data.train_splits earlier in this run" in capsys.readouterr().out
    unfolded.fit(stop_after_epochs=1)
    assert unfolded.epoch == 2 and not (out / "best.pt").exists()
    capsys.readouterr()
    assert main(["eval", str(out / "last.pt"), "--backend", "torch"]) == 0  # its stored config no longer folds val
    assert "these images trained the model, so this is no val figure" in capsys.readouterr().out
    Trainer(
        load_config(path, ["data.train_splits=[train]", f"train.init_weights={out / 'last.pt'}", f"train.out_dir={tmp_path / 'tuned'}"])
    )
    assert "trained on this dataset's val images" in capsys.readouterr().out
    # A run started without val and resumed with it: the best.pt chosen on val goes (eval would take it), but
    # only once an epoch trained on val commits: a kill before that loses nothing (before: removed at resume).
    later = tmp_path / "later"
    plain = Trainer(load_config(path, ["data.train_splits=[train]", f"train.out_dir={later}"]))
    plain.fit(stop_after_epochs=1)
    chosen = (later / "best.pt").read_bytes()
    resumed = Trainer(load_config(path, [f"train.out_dir={later}"]), resume=True)
    assert (later / "best.pt").read_bytes() == chosen  # killed here: the val-chosen best.pt is still there
    resumed.fit(stop_after_epochs=1)
    assert (later / "last.pt").is_file() and not (later / "best.pt").exists()
    (later / "best.pt").write_bytes(chosen)  # as if killed between that epoch's commit and the removal
    Trainer(load_config(path, ["data.train_splits=[train]", f"train.out_dir={later}"]), resume=True)
    assert not (later / "best.pt").exists()
    for splits, message in ((["train", "train"], r"name each split once"), ([], r"data.train_splits is empty")):
        config["data"]["train_splits"] = splits
        path.write_text(yaml.safe_dump(config))
        with pytest.raises(SemsegError, match=message):
            load_config(path)
    config["data"].update(train_splits=["train"], val_every_nth=0)  # a ZeroDivisionError deep in the split before
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SemsegError, match=r"data.val_every_nth: 0 must be at least 2"):
        load_config(path)


def test_a_run_stopped_early_says_how_to_go_on(tmp_path: Path, cityscapes_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--stop-after-epochs ends with how to continue; --resume says where it resumed, and a finished run that
    nothing remains to do; eval before any validation says so (before: it suggested folding val into training)."""
    from semseg_ros.cli import main

    path = tiny_config(tmp_path, cityscapes_root, val_every=2)
    out = tmp_path / "run"
    assert main(["eval", str(path), "--backend", "torch"]) == 2  # before any training
    assert f"no trained run in {out} yet: train it first (`semseg train {path}`)" in capsys.readouterr().err
    assert main(["train", str(path), "--stop-after-epochs", "1"]) == 0
    assert f"stopped after epoch 1 of 2: continue with `semseg train {path} --resume`" in capsys.readouterr().out
    assert main(["eval", str(path), "--backend", "torch"]) == 2
    assert f"no validated epoch has chosen one yet: val runs every train.val_every epochs): pass --checkpoint {out / 'last.pt'}" in (
        capsys.readouterr().err
    )
    assert main(["train", str(path), "--resume"]) == 0
    assert f"resumed from {out / 'last.pt'}: epoch 1 of 2 done, step 2" in capsys.readouterr().out
    assert main(["train", str(path), "--resume"]) == 0
    assert f"nothing to do: all 2 epochs of {out} are done" in capsys.readouterr().out


def test_the_sizes_a_run_uses_are_said(tmp_path: Path, cityscapes_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The console names the training crop sizes by epoch and the validation size; a `--set
    train.input_size` that a size_progression stage from epoch 0 overrides for training is pointed out
    (before: training went on at the progression's size without a word)."""
    from semseg_ros.cli import main

    path = tiny_config(tmp_path, cityscapes_root)
    assert load_config(path).describe_sizes() == (
        "sizes (height x width): training crops 64x128 in epoch 1, 96x160 in epoch 2 of 2; validation and inference 64x128 (train.input_size)"
    )
    assert (
        load_config(path, ["train.size_progression=[]", "train.epochs=3"])
        .describe_sizes()
        .startswith("sizes (height x width): training crops 64x128 in epochs 1-3 of 3;")
    )
    # epochs counted from 1 as the progress lines count them; a stage the run never reaches is left out
    assert (
        load_config(path, ["train.epochs=1"]).describe_sizes().startswith("sizes (height x width): training crops 64x128 in epoch 1 of 1;")
    )
    shadowed = ["--set", "train.size_progression=[{epoch: 0, height: 96, width: 160}]", "--set", "train.input_size=[64, 96]"]
    assert main(["train", str(path), *shadowed, "--stop-after-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "sizes (height x width): training crops 96x160 in epochs 1-2 of 2; validation and inference 64x96 (train.input_size)" in out
    assert (
        "note: train.input_size is the validation and inference size; training crops follow train.size_progression, 96x160 from the first "
        "epoch (--set train.size_progression=[] trains at input_size)"
    ) in out
    assert (
        main(
            [
                "train",
                str(path),
                "--set",
                "train.input_size=[64, 96]",
                "--set",
                f"train.out_dir={tmp_path / 'other'}",
                "--stop-after-epochs",
                "1",
            ]
        )
        == 0
    )
    assert "note: train.input_size" not in capsys.readouterr().out  # the stage starts at epoch 1: input_size trains epoch 0
