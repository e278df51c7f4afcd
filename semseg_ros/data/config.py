"""The `data` and `augment` sections of a training config (YAML keys, defaults shown here).

They live beside the datasets and transforms that read them; train/config.py assembles them into
the whole `Config` (and re-exports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from semseg_ros.errors import SemsegError


@dataclass
class DataConfig:
    format: Literal["cityscapes", "camvid", "kitti-road", "kitti-raw"] = "cityscapes"
    root: str = ""  # dataset root (kitti-raw: a folder holding drives, searched recursively)
    label_set: str = "cityscapes19"  # cityscapes19 | categories | road | camvid (kitti-road: road; camvid: camvid)
    coarse: bool = False  # cityscapes: add train_extra images with gtCoarse labels to training
    kitti_road_target: Literal["road", "lane"] = "road"
    val_every_nth: int = 5  # kitti-road / kitti-raw: every n-th image (sorted by name) goes to val
    # splits whose images train the network; ["train", "val"] folds val in once val has made the choices
    # (the run's val figures are then figures on training images, and its last epoch is the model)
    train_splits: tuple[Literal["train", "val"], ...] = ("train",)
    batch_size: int = 8
    val_batch_size: int = 4
    workers: int = 2

    @property
    def folds_val(self) -> bool:
        """val is among the training splits: its figures are on training images, so no best.pt is chosen
        and last.pt is the model."""
        return "val" in self.train_splits


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.5, 1.0)  # RandomResizedCrop area fraction
    hflip: float = 0.5
    color: float = 0.5  # probability of a brightness/contrast/hue change
    hard_augs: bool = False  # rain, snow, fog or sun flare (one of them)
    hard_augs_p: float = 0.3
    camera: float = 0.0  # probability of each camera effect: exposure/gamma, white balance, noise, blur, JPEG


def check_split_names(splits: Sequence[str]) -> None:
    """Raise SemsegError unless `splits` names at least one split, each once (data.train_splits)."""
    if not splits:
        raise SemsegError("data.train_splits is empty: name the splits that train, e.g. [train] or [train, val]")
    if len(set(splits)) < len(splits):
        raise SemsegError(f"data.train_splits {list(splits)}: name each split once, e.g. [train, val]")
