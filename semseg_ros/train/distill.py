"""Knowledge distillation from a trained teacher (structured KD, Liu et al., arXiv 1903.04197).

Terms, each weighted from the `distill:` config section and added to the task loss:
- pixel: KL(softmax(teacher / T) || softmax(student / T)) * T^2 per labelled pixel;
- pair: squared difference of the cosine-similarity matrices of the deepest encoder features,
  average-pooled to a fixed grid (the matrices are N x N whatever the channel counts, so teacher and
  student need no adapter and may have different strides);
- holistic (experimental): a spectral-norm discriminator on (image, class probabilities) learns to
  tell teacher maps from student maps with a hinge loss; the student is pushed to fool it. The
  discriminator has its own Adam optimizer, is stepped inside `forward`, and is per process under
  torchrun (not synchronised: the student's gradients are).
The teacher is frozen: eval mode, no gradients, its own normalisation, never in the optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from semseg_ros.errors import SemsegError
from semseg_ros.labels import IGNORE
from semseg_ros.models.card import ModelCard
from semseg_ros.models.checkpoint import model_from_checkpoint
from semseg_ros.models.factory import SegmentationNet
from semseg_ros.train.config import DistillConfig


def pixel_kd(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Mean over non-ignored pixels (all pixels when `target` is None) of KL(teacher || student) at
    temperature T, times T^2."""
    log_student = F.log_softmax(student.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="none").sum(dim=1)
    valid = torch.ones_like(kl, dtype=torch.bool) if target is None else target != IGNORE
    return (kl * valid).sum() / valid.sum().clamp(min=1) * temperature**2


def similarity(features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, N, N) cosine similarities between the N = rows * cols cells of the pooled feature map."""
    pooled = F.adaptive_avg_pool2d(features.float(), grid).flatten(2)
    unit = F.normalize(pooled, dim=1)
    return unit.transpose(1, 2) @ unit


def pair_kd(student: torch.Tensor, teacher: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean squared difference of the two similarity matrices."""
    return (similarity(student, grid) - similarity(teacher, grid)).pow(2).mean()


class Discriminator(nn.Module):
    """PatchGAN-style critic over probabilities and image at half resolution (spectral-norm convolutions)."""

    def __init__(self, classes: int, width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = []
        channels = classes + 3
        for out in (width, width * 2, width * 4):
            layers += [sn(nn.Conv2d(channels, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        layers.append(sn(nn.Conv2d(channels, 1, 3, padding=1)))
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        pair = torch.cat([images.float(), logits.float().softmax(dim=1)], dim=1)
        return self.body(F.interpolate(pair, scale_factor=0.5, mode="bilinear", align_corners=False))


class Distiller(nn.Module):
    """The frozen teacher plus the KD terms; call with the student's outputs and the same batch."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, config: DistillConfig, teacher: SegmentationNet, card: ModelCard, mean: Any, std: Any):
        super().__init__()
        if config.temperature <= 0 or min(config.pixel, config.pair, config.holistic) < 0:
            raise SemsegError("distill: temperature must be positive and the weights pixel, pair, holistic non-negative")
        if config.pair > 0 and teacher.family != "smp":
            raise SemsegError(f"distill.pair needs encoder features; teacher arch {card.model.arch} has none (set distill.pair: 0)")
        self.config = config
        self.teacher = teacher.eval().requires_grad_(False)
        # The teacher sees the images as it was trained to: undo the student's normalisation, apply its own.
        student_mean, student_std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        teacher_mean, teacher_std = torch.tensor(card.mean).view(1, 3, 1, 1), torch.tensor(card.std).view(1, 3, 1, 1)
        self.register_buffer("scale", student_std / teacher_std, persistent=False)
        self.register_buffer("shift", (student_mean - teacher_mean) / teacher_std, persistent=False)
        self.discriminator: Discriminator | None = None
        self.discriminator_optimizer: torch.optim.Optimizer | None = None
        if config.holistic > 0:
            self.discriminator = Discriminator(len(card.classes))
            self.discriminator_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.holistic_lr, betas=(0.5, 0.999))

    def train(self, mode: bool = True) -> Distiller:
        """The teacher stays in eval mode (batch-norm statistics frozen) whatever the trainer asks."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, student: dict[str, Any], images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(weighted KD loss, {kd_pixel, kd_pair, kd_holistic, kd_holistic_d}) for student outputs {"out", "features"}."""
        with torch.no_grad():
            teacher = self.teacher(images * self.scale + self.shift, all_outputs=True)
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if self.config.pixel > 0:
            labels = None if self.config.pixel_on_unlabelled else target
            terms["kd_pixel"] = (self.config.pixel, pixel_kd(student["out"], teacher["out"], labels, self.config.temperature))
        if self.config.pair > 0:
            if "features" not in student:
                raise SemsegError("distill.pair needs encoder features; the student arch has none (set distill.pair: 0)")
            rows, cols = self.config.pair_grid
            terms["kd_pair"] = (self.config.pair, pair_kd(student["features"][-1], teacher["features"][-1], (rows, cols)))
        if self.discriminator is not None:
            terms["kd_holistic_d"] = (0.0, self._step_discriminator(images, student["out"].detach(), teacher["out"]))
            terms["kd_holistic"] = (self.config.holistic, -self.discriminator(images, student["out"]).mean())
        total = sum((weight * value for weight, value in terms.values()), torch.zeros((), device=images.device))
        return total, {name: float(value.detach()) for name, (_, value) in terms.items()}

    def _step_discriminator(self, images: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """One hinge-loss step: teacher maps are 'real', student maps 'fake'; returns the critic's loss."""
        assert self.discriminator is not None and self.discriminator_optimizer is not None
        with torch.autocast(images.device.type, enabled=False):
            loss = F.relu(1 - self.discriminator(images, teacher)).mean() + F.relu(1 + self.discriminator(images, student)).mean()
            self.discriminator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.discriminator_optimizer.step()
            self.discriminator_optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def training_state(self) -> dict[str, Any]:
        """What resuming needs besides the student: the discriminator and its optimizer (the teacher is a file)."""
        if self.discriminator is None or self.discriminator_optimizer is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(), "discriminator_optimizer": self.discriminator_optimizer.state_dict()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        if self.discriminator is not None and self.discriminator_optimizer is not None and state:
            self.discriminator.load_state_dict(state["discriminator"])
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])


def build_distiller(config: DistillConfig, classes: list[str], mean: Any, std: Any, device: torch.device) -> Distiller:
    """Load the teacher checkpoint and check it predicts the student's classes."""
    assert config.teacher is not None
    teacher, card = model_from_checkpoint(config.teacher, map_location="cpu")
    if list(card.classes) != list(classes):
        raise SemsegError(
            f"distill.teacher {config.teacher}: predicts label set {card.label_set} ({len(card.classes)} classes), "
            f"the student trains on {len(classes)}; use a teacher trained on the same label set"
        )
    return Distiller(config, teacher.float(), card, mean, std).to(device)
