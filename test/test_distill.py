"""Knowledge distillation: the KD terms, the frozen teacher, and a distilled training run."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from test_training import tiny_config

from semseg_ros.errors import SemsegError
from semseg_ros.labels import IGNORE
from semseg_ros.models.checkpoint import load_checkpoint, model_from_checkpoint
from semseg_ros.train.config import DistillConfig, load_config
from semseg_ros.train.distill import Distiller, build_distiller, pair_kd, pixel_kd
from semseg_ros.train.trainer import train


def test_pixel_kd_is_zero_for_equal_logits_positive_otherwise_and_skips_ignored_pixels() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    assert pixel_kd(teacher.clone(), teacher, target, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = teacher + torch.randn_like(teacher)
    assert pixel_kd(student, teacher, target, 2.0).item() > 0.01
    target[:, :4] = IGNORE  # changing the student where nothing is labelled leaves the loss alone
    changed = student.clone()
    changed[:, :, :4] += 10 * torch.randn(2, 5, 4, 8)
    assert pixel_kd(changed, teacher, target, 2.0).item() == pytest.approx(pixel_kd(student, teacher, target, 2.0).item(), rel=1e-6)
    assert pixel_kd(changed, teacher, None, 2.0).item() > pixel_kd(student, teacher, None, 2.0).item()  # unless asked to


def test_pair_kd_is_zero_for_equal_features_and_compares_any_channels_and_strides() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 32, 8, 16)
    assert pair_kd(features.clone(), features, (4, 8)).item() == pytest.approx(0.0, abs=1e-7)
    # A student with other channels and stride but the same cell-to-cell structure matches the teacher.
    projected = torch.nn.functional.interpolate(torch.cat([features, features], dim=1), scale_factor=2, mode="nearest")
    assert pair_kd(projected, features, (4, 8)).item() == pytest.approx(0.0, abs=1e-6)
    assert pair_kd(torch.randn(2, 64, 16, 32), features, (4, 8)).item() > 1e-3


def test_distiller_freezes_the_teacher_and_sends_gradients_only_into_the_student(tiny_checkpoint: Path) -> None:
    config = DistillConfig(teacher=str(tiny_checkpoint), temperature=2.0, pixel=1.0, pair=1.0, pair_grid=(2, 4))
    _, card = model_from_checkpoint(tiny_checkpoint)
    distiller = build_distiller(config, card.classes, card.mean, card.std, torch.device("cpu"))
    distiller.train()
    assert not distiller.teacher.training and not any(p.requires_grad for p in distiller.teacher.parameters())
    student, _ = model_from_checkpoint(tiny_checkpoint)
    student.eval()  # same weights and mode as the teacher: nothing to distil
    images, target = torch.randn(2, 3, 64, 128), torch.randint(0, 19, (2, 64, 128))
    loss, terms = distiller(student(images, all_outputs=True), images, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and set(terms) == {"kd_pixel", "kd_pair"}

    student.train()
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    before = copy.deepcopy(distiller.teacher.state_dict())
    loss, terms = distiller(student(images, all_outputs=True), images, target)
    assert terms["kd_pixel"] > 0 and terms["kd_pair"] > 0
    loss.backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(p.grad is None for p in distiller.teacher.parameters())
    for name, tensor in distiller.teacher.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_distiller_feeds_the_teacher_its_own_normalisation(tiny_checkpoint: Path) -> None:
    teacher, card = model_from_checkpoint(tiny_checkpoint)
    student_mean, student_std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    distiller = Distiller(DistillConfig(teacher=str(tiny_checkpoint)), teacher, card, student_mean, student_std)
    pixels = torch.rand(1, 3, 4, 4)
    as_student = (pixels - 0.5) / 0.25
    expected = (pixels - torch.tensor(card.mean).view(1, 3, 1, 1)) / torch.tensor(card.std).view(1, 3, 1, 1)
    assert torch.allclose(as_student * distiller.scale + distiller.shift, expected, atol=1e-6)


def test_a_teacher_for_another_label_set_is_refused(road_checkpoint: Path) -> None:
    with pytest.raises(SemsegError, match="label set road"):
        build_distiller(DistillConfig(teacher=str(road_checkpoint)), ["a"] * 19, (0, 0, 0), (1, 1, 1), torch.device("cpu"))


def test_distilled_training_logs_kd_terms_and_leaves_the_teacher_file_alone(
    tmp_path: Path, cityscapes_root: Path, tiny_checkpoint: Path
) -> None:
    path = tiny_config(tmp_path, cityscapes_root, "student", epochs=1)
    config = yaml.safe_load(path.read_text())
    config["model"] = {"arch": "fpn", "encoder": "tu-mobilenetv3_small_100", "fpn_channels": [16, 32]}
    config["distill"] = {"teacher": str(tiny_checkpoint), "temperature": 2.0, "pixel": 1.0, "pair": 0.5, "pair_grid": [2, 4]}
    path.write_text(yaml.safe_dump(config))
    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    train(load_config(path))
    out = tmp_path / "student"
    steps = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines() if '"step"' in line]
    assert steps and all(s["kd_pixel"] > 0 and s["kd_pair"] > 0 and s["loss"] > s["ce"] for s in steps)
    card = load_checkpoint(out / "last.pt")["card"]
    assert card["model"]["arch"] == "fpn" and card["model"]["fpn_channels"] == [16, 32]
    assert hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest() == digest


def test_holistic_term_trains_its_discriminator_and_reaches_the_student(tiny_checkpoint: Path) -> None:
    config = DistillConfig(teacher=str(tiny_checkpoint), pixel=0.0, holistic=1.0, holistic_lr=1e-2)
    _, card = model_from_checkpoint(tiny_checkpoint)
    distiller = build_distiller(config, card.classes, card.mean, card.std, torch.device("cpu"))
    assert distiller.discriminator is not None
    critic = copy.deepcopy(distiller.discriminator.state_dict())
    teacher = copy.deepcopy(distiller.teacher.state_dict())
    student, _ = model_from_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    images, target = torch.randn(2, 3, 64, 128), torch.randint(0, 19, (2, 64, 128))
    loss, terms = distiller(student.train()(images, all_outputs=True), images, target)
    assert set(terms) == {"kd_holistic", "kd_holistic_d"} and terms["kd_holistic_d"] > 0
    assert any(not torch.equal(v, critic[k]) for k, v in distiller.discriminator.state_dict().items())  # the critic stepped
    loss.backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(torch.equal(v, teacher[k]) for k, v in distiller.teacher.state_dict().items())
    state = distiller.training_state()
    assert set(state) == {"discriminator", "discriminator_optimizer"}


def test_resume_is_exact_with_the_discriminator(tmp_path: Path, cityscapes_root: Path, tiny_checkpoint: Path) -> None:
    runs = {}
    for name in ("straight", "interrupted"):
        path = tiny_config(tmp_path, cityscapes_root, name, size_progression=[])
        config = yaml.safe_load(path.read_text())
        config["distill"] = {"teacher": str(tiny_checkpoint), "pixel": 1.0, "holistic": 0.1}
        path.write_text(yaml.safe_dump(config))
        runs[name] = load_config(path)
    train(runs["straight"])
    train(runs["interrupted"], stop_after_epochs=1)
    train(runs["interrupted"], resume=True)
    final = {n: load_checkpoint(tmp_path / n / "last.pt") for n in runs}
    for key, value in final["straight"]["model_state"].items():
        assert torch.allclose(value.float(), final["interrupted"]["model_state"][key].float(), atol=1e-6), key
    critics = [final[n]["train_state"]["distiller"]["discriminator"] for n in runs]
    assert all(torch.allclose(critics[0][k], critics[1][k], atol=1e-6) for k in critics[0])
