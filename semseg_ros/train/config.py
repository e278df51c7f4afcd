"""The training config schema: YAML sections map onto these dataclasses (defaults shown here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from semseg_ros import schema
from semseg_ros.data.config import AugmentConfig, DataConfig, check_split_names
from semseg_ros.errors import SemsegError, unknown_choice
from semseg_ros.labels import LABEL_SETS
from semseg_ros.models.card import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LossConfig:
    ce: float = 1.0
    dice: float = 0.0
    lovasz: float = 0.0
    bce: float = 0.0  # per-pixel sigmoid BCE over one-hot classes (multi-label style)
    class_weights: list[float] | None = None
    auto_class_weights: bool = False  # ENet weights 1 / ln(1.02 + pixel frequency), from the training masks
    aux_weight: float = 0.4


@dataclass
class OptimConfig:
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_steps: int = 100
    poly_power: float = 0.9
    accumulate: int = 1  # optimizer step every `accumulate` batches
    clip_grad: float | None = 5.0


@dataclass
class SizeStage:
    epoch: int
    height: int
    width: int


@dataclass
class TrainConfig:
    epochs: int = 10
    input_size: tuple[int, int] = (512, 1024)  # (height, width) the network sees at validation and inference
    size_progression: list[SizeStage] = field(default_factory=list)  # training crop size from an epoch on
    val_every: int = 1
    amp: Literal["none", "bf16", "fp16"] = "bf16"  # mixed precision on CUDA
    amp_on_cpu: bool = False  # bf16 autocast on CPU too (fast on CPUs with AVX512-BF16 or AMX)
    channels_last: bool = True  # used on CUDA only
    compile: bool = False
    seed: int = 0
    init_weights: str | None = None  # start from this checkpoint's weights (tensors whose name and shape match)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out_dir: str = "runs/train"
    log_images: int = 4  # validation images written to TensorBoard
    max_steps_per_epoch: int | None = None  # cap for quick experiments and tests


@dataclass
class DistillConfig:
    teacher: str | None = None  # teacher checkpoint (any architecture, same label set); distillation is on when set
    temperature: float = 1.0
    pixel: float = 1.0  # weight of the pixel-wise KL term
    pixel_on_unlabelled: bool = False  # KL also on ignore pixels: the teacher fills the gaps of coarse labels
    pair: float = 0.0  # weight of the pair-wise feature-similarity term
    pair_grid: tuple[int, int] = (8, 16)  # (rows, cols) both feature maps are pooled to before comparing
    holistic: float = 0.0  # experimental: weight of the adversarial term (a discriminator on image + probabilities)
    holistic_lr: float = 1e-4  # the discriminator's Adam learning rate


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def crop_size(self, epoch: int) -> tuple[int, int]:
        """Training crop (height, width) in `epoch`: the last progression stage started, else input_size."""
        size = self.train.input_size
        for stage in sorted(self.train.size_progression, key=lambda s: s.epoch):
            if stage.epoch <= epoch:
                size = (stage.height, stage.width)
        return size

    def describe_sizes(self) -> str:
        """One line of the sizes a run uses (height x width, pixels), for the console. Epochs are counted
        from 1, as the progress lines count them (size_progression's `epoch` counts from 0)."""
        epochs = self.train.epochs
        starts = sorted({s.epoch for s in self.train.size_progression if s.epoch < epochs} | {0})
        spans = []
        for first, after in zip(starts, [*starts[1:], epochs], strict=True):
            height, width = self.crop_size(first)
            spans.append(f"{height}x{width} in epoch{'s' * (after - first > 1)} {first + 1}{f'-{after}' if after - first > 1 else ''}")
        height, width = self.train.input_size
        return f"sizes (height x width): training crops {', '.join(spans)} of {epochs}; validation and inference {height}x{width} (train.input_size)"


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """A validated Config from a YAML file (or defaults when `path` is None) plus `--set` overrides."""
    data = schema.read_yaml(path) if path is not None else {}
    config = schema.load(Config, schema.apply_overrides(data, overrides or []))
    _check(config)
    return config


def smp_encoder_names() -> list[str]:
    """Every encoder name segmentation_models_pytorch builds: its own and "tu-" + each timm model."""
    import segmentation_models_pytorch as smp
    import timm

    return [*smp.encoders.get_encoder_names(), *(f"tu-{name}" for name in timm.list_models())]


def _check(config: Config) -> None:
    from semseg_ros.models.factory import SMP_ARCHS  # here: loading a config does not import the model libraries

    if config.model.arch in SMP_ARCHS:
        encoders = smp_encoder_names()
        if config.model.encoder not in encoders:
            raise unknown_choice(
                "model.encoder", config.model.encoder, encoders, "encoders of segmentation_models_pytorch and timm (tu-NAME)"
            )
    if config.data.label_set not in LABEL_SETS:
        raise unknown_choice("data.label_set", config.data.label_set, LABEL_SETS)
    if config.train.epochs <= 0:
        raise SemsegError("train.epochs: must be positive")
    optim = config.optim
    if not (math.isfinite(optim.lr) and optim.lr > 0):
        raise SemsegError(f"optim.lr: {optim.lr} must be a finite number > 0")
    for name in ("weight_decay", "momentum"):
        value = getattr(optim, name)
        if not (math.isfinite(value) and value >= 0):
            raise SemsegError(f"optim.{name}: {value} must be a finite number >= 0")
    if optim.clip_grad is not None and not (math.isfinite(optim.clip_grad) and optim.clip_grad > 0):
        raise SemsegError(f"optim.clip_grad: {optim.clip_grad} must be a finite number > 0 (or null for no clipping)")
    if config.optim.accumulate <= 0:
        raise SemsegError("optim.accumulate: must be at least 1")
    check_split_names(config.data.train_splits)
    if config.data.val_every_nth < 2:
        raise SemsegError(f"data.val_every_nth: {config.data.val_every_nth} must be at least 2 (every n-th image goes to val)")
    if config.data.batch_size <= 0 or config.data.val_batch_size <= 0:
        raise SemsegError("data.batch_size and data.val_batch_size must be positive")
    if not 0 < config.augment.scale[0] <= config.augment.scale[1] <= 1:
        raise SemsegError("augment.scale: expected 0 < min <= max <= 1 (area fraction of the crop)")
    for name in ("hflip", "color", "hard_augs_p", "camera"):
        value = getattr(config.augment, name)
        if not 0 <= value <= 1:
            raise SemsegError(f"augment.{name}: {value} is a probability; give a number from 0 to 1")
    for h, w in [config.train.input_size] + [(s.height, s.width) for s in config.train.size_progression]:
        if h < 32 or w < 32:
            raise SemsegError(f"size {h}x{w}: height and width must be at least 32")
    if config.loss.auto_class_weights and config.loss.class_weights:
        raise SemsegError("loss: give class_weights or auto_class_weights, not both")
    if config.loss.ce + config.loss.dice + config.loss.lovasz + config.loss.bce <= 0:
        raise SemsegError("loss: at least one of ce, dice, lovasz, bce must have a positive weight")
