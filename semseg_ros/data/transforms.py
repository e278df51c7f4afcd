"""albumentations pipelines for training and validation, built from the config's augment section."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from semseg_ros.data.config import AugmentConfig


class Pipeline:
    """Callable (image, mask) -> (normalised CHW float tensor, mask tensor), seedable per sample."""

    def __init__(self, compose: A.Compose, mask_resize: bool = True):
        self.compose = compose
        self.mask_resize = mask_resize

    def set_random_seed(self, seed: int) -> None:
        self.compose.set_random_seed(seed)

    def __call__(self, image: NDArray[np.uint8], mask: NDArray[np.uint8]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mask_resize:
            out = self.compose(image=image, mask=mask)
            return torch.from_numpy(out["image"].transpose(2, 0, 1).copy()), torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        # Validation: the network sees a resized image; metrics use the mask at full resolution.
        out = self.compose(image=image)
        return torch.from_numpy(out["image"].transpose(2, 0, 1).copy()), torch.from_numpy(mask.copy()).long()


def train_pipeline(size: tuple[int, int], augment: AugmentConfig, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> Pipeline:
    """Random resized crop to `size` (h, w), flip, colour, optional weather (one of rain/snow/fog/flare),
    optional camera effects, normalise."""
    height, width = size
    aspect = width / height
    steps: list[Any] = [
        A.RandomResizedCrop(size=(height, width), scale=tuple(augment.scale), ratio=(aspect * 0.8, aspect * 1.25)),
        A.HorizontalFlip(p=augment.hflip),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=augment.color),
    ]
    if augment.hard_augs:
        steps.append(
            A.OneOf(
                [
                    A.RandomRain(brightness_coefficient=0.9, drop_width=1, blur_value=3, p=1.0),
                    A.RandomSnow(p=1.0),
                    A.RandomFog(p=1.0),
                    A.RandomSunFlare(src_radius=max(16, width // 8), p=1.0),
                ],
                p=augment.hard_augs_p,
            )
        )
    if augment.camera > 0:
        # Another camera than the training set's (CamVid's 2007 camcorder against KITTI's machine-vision
        # cameras): exposure and response curve, colour temperature, sensor noise, focus or motion blur,
        # compression. Each is applied with probability `camera`, independently.
        p = augment.camera
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.35, contrast_limit=0.35, p=p),
            A.RandomGamma(gamma_limit=(65, 150), p=p),
            A.PlanckianJitter(p=p),
            A.ISONoise(color_shift=(0.01, 0.03), intensity=(0.05, 0.3), p=p),
            A.OneOf([A.GaussianBlur(sigma_limit=(0.3, 1.5)), A.MotionBlur(blur_limit=(3, 7))], p=p),
            A.ImageCompression(quality_range=(35, 90), p=p),
        ]
    steps.append(A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0))
    return Pipeline(A.Compose(steps, seed=seed))


def describe_augment(augment: AugmentConfig) -> str:
    """One line naming what `train_pipeline` does to training images, for the console."""
    low, high = augment.scale
    parts = [
        f"crops of {low:g}-{high:g} of the image area at 0.8-1.25x the network's aspect ratio",
        f"hflip {augment.hflip:g}",
        f"colour {augment.color:g}",
    ]
    parts.append(f"weather {augment.hard_augs_p:g}" if augment.hard_augs and augment.hard_augs_p > 0 else "weather off")
    parts.append(f"camera effects {augment.camera:g}" if augment.camera > 0 else "camera effects off")
    return "augment: " + ", ".join(parts)


def eval_pipeline(size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> Pipeline:
    """Resize the image to the network size and normalise; the mask stays at full resolution."""
    steps = [
        A.Resize(height=size[0], width=size[1], interpolation=cv2.INTER_LINEAR),
        A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
    ]
    return Pipeline(A.Compose(steps), mask_resize=False)


def collate_eval(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Stack the (equal-size) network inputs; keep full-resolution masks, which may differ in size, as a list."""
    return torch.stack([image for image, _ in batch]), [mask for _, mask in batch]
