"""Segmentation datasets over the real on-disk layouts: Cityscapes, CamVid, KITTI road and KITTI raw drives.

Each dataset lists (image, label) file pairs and yields an RGB uint8 image and a uint8 mask of
label-set class ids (255 = ignore), passed through an optional `transform(image, mask)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from semseg_ros.data.config import DataConfig, check_split_names
from semseg_ros.data.images import MAX_IMAGE_PIXELS, header_size, read_label_png, read_rgb
from semseg_ros.errors import SemsegError
from semseg_ros.labels import IGNORE, LabelSet, camvid32_color_lut, get_label_set

Transform = Callable[[NDArray[np.uint8], NDArray[np.uint8]], tuple[Any, Any]]


def read_road_gt(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> NDArray[np.uint8]:
    """KITTI road GT (gt_image_2) as a mask: 1 road (B > 0), 0 other, IGNORE where R == 0 (invalid)."""
    rgb = read_rgb(path, max_pixels)
    return np.where(rgb[..., 0] > 0, (rgb[..., 2] > 0).astype(np.uint8), IGNORE).astype(np.uint8)


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path
    kind: str  # how to decode the label file: "label_ids" (Cityscapes ids), "camvid" or "kitti_road"


class SegmentationDataset(torch.utils.data.Dataset):
    """Pairs of files decoded into (image, class-id mask), then transformed."""

    def __init__(self, samples: list[Sample], label_set: LabelSet, transform: Transform | None = None):
        if not samples:
            raise SemsegError("dataset is empty")
        self.samples = samples
        self.label_set = label_set
        self.transform = transform
        self.seed = 0
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations become a function of (seed, epoch, index): resumable and worker-independent."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        sample = self.samples[index]
        image = read_rgb(sample.image)
        if sample.kind == "kitti_road":
            mask = read_road_gt(sample.label)
        elif sample.kind == "camvid":
            mask = read_camvid_label(sample.label, self.label_set)
        else:
            mask = self.label_set.map_cityscapes_ids(read_label_png(sample.label))
        if mask.shape != image.shape[:2]:
            raise SemsegError(f"{sample.label}: label size {mask.shape[::-1]} differs from image {sample.image} {image.shape[1::-1]}")
        return image, mask

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, mask = self.load(index)
        if self.transform is None:
            return image, mask
        seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        set_seed = getattr(self.transform, "set_random_seed", None)
        if set_seed is not None:
            set_seed(seed)
        return self.transform(image, mask)


def _pairs(images: list[Path], label_for: Callable[[Path], Path], kind: str, what: str) -> list[Sample]:
    if not images:
        raise SemsegError(f"no {what} images found")
    samples = [Sample(image, label_for(image), kind) for image in images]
    missing = [s for s in samples if not s.label.is_file()]
    if missing:
        raise SemsegError(
            f"{len(missing)} of {len(samples)} {what} images have no label file, e.g. {missing[0].image} (expected {missing[0].label})"
        )
    return samples


def cityscapes_samples(root: str | Path, split: str, coarse: bool = False) -> list[Sample]:
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine labelIds (plus train_extra + gtCoarse)."""
    root = Path(root)
    if not (root / "leftImg8bit").is_dir():
        raise SemsegError(f"{root}: not a Cityscapes root (expected leftImg8bit/ and gtFine/ under it)")

    def fine(image: Path) -> Path:
        stem = image.name.removesuffix("_leftImg8bit.png")
        return root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"

    if not (root / "leftImg8bit" / split).is_dir():
        found = ", ".join(sorted(p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir())) or "none"
        raise SemsegError(f"Cityscapes split '{split}' is not under {root / 'leftImg8bit'} (splits there: {found})")
    images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    samples = _pairs(images, fine, "label_ids", f"Cityscapes {split}")
    if coarse and split == "train":

        def rough(image: Path) -> Path:
            stem = image.name.removesuffix("_leftImg8bit.png")
            return root / "gtCoarse" / "train_extra" / image.parent.name / f"{stem}_gtCoarse_labelIds.png"

        extra = sorted((root / "leftImg8bit" / "train_extra").glob("*/*_leftImg8bit.png"))
        samples += _pairs(extra, rough, "label_ids", "Cityscapes train_extra (coarse)")
    return samples


def _split(items: list[Path], split: str, val_every_nth: int) -> list[Path]:
    if split not in ("train", "val"):
        raise SemsegError(f"split '{split}' must be train or val")
    chosen = [p for i, p in enumerate(sorted(items)) if (i % val_every_nth == val_every_nth - 1) == (split == "val")]
    if not chosen:
        raise SemsegError(f"the {split} split is empty: {len(items)} images with every {val_every_nth}-th for val")
    return chosen


def kitti_road_samples(root: str | Path, split: str, target: str = "road", val_every_nth: int = 5) -> list[Sample]:
    """data_road/training: every n-th image (sorted by name) is val; `target` road or lane (um only)."""
    root = Path(root)
    training = root / "data_road" / "training" if (root / "data_road").is_dir() else root / "training"
    if not (training / "image_2").is_dir():
        raise SemsegError(f"{root}: not a KITTI road root (expected data_road/training/image_2/)")
    images = sorted((training / "image_2").glob("*.png"))
    if target == "lane":
        images = [p for p in images if p.name.startswith("um_")]

    def gt(image: Path) -> Path:
        category, index = image.stem.split("_", 1)
        return training / "gt_image_2" / f"{category}_{target}_{index}.png"

    return _pairs(_split(images, split, val_every_nth), gt, "kitti_road", f"KITTI road {split}")


def kitti_raw_samples(root: str | Path, split: str, val_every_nth: int = 5) -> list[Sample]:
    """Synthetic (or annotated) KITTI raw drives under `root`: image_02/data with image_02/semantic."""
    root = Path(root)
    if not root.is_dir():
        raise SemsegError(f"{root}: KITTI raw root not found")
    images = sorted(p for p in root.rglob("image_02/data/*.png"))
    if not images:
        raise SemsegError(f"{root}: no drives with image_02/data/*.png found")
    return _pairs(_split(images, split, val_every_nth), lambda p: p.parent.parent / "semantic" / p.name, "label_ids", f"KITTI raw {split}")


CAMVID_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_camvid_label(path: Path, label_set: LabelSet) -> NDArray[np.uint8]:
    """A CamVid label as CamVid-11 class ids (HxW uint8, 255 = void).

    Reads both forms users have: the SegNet layout's single-channel class-index PNGs (0..10, 11 = void)
    and the original colour-coded 32-class labels (`*_L.png`), grouped into the 11 classes
    (labels.CAMVID_CLASSES). Raises SemsegError for an unreadable file or a colour outside the 32-class table.
    """
    if label_set.name != "camvid":
        raise SemsegError(f"{path}: CamVid labels need data.label_set camvid, not '{label_set.name}'")
    header_size(path, MAX_IMAGE_PIXELS, str(path))
    try:
        with Image.open(path) as image:
            colour_coded = image.mode in ("RGB", "RGBA")
            rgb = np.array(image.convert("RGB")) if colour_coded else None
    except Exception as exc:  # truncated or corrupt: PIL raises OSError, SyntaxError, ValueError ...
        raise SemsegError(f"{path}: cannot read the CamVid label image ({' '.join(str(exc).split())[:120]})") from None
    if rgb is None:
        label = read_label_png(path)
        return np.where(label < label_set.num_classes, label, IGNORE).astype(np.uint8)
    channels = rgb.astype(np.int64)
    packed = channels[..., 0] << 16 | channels[..., 1] << 8 | channels[..., 2]
    colors, inverse = np.unique(packed, return_inverse=True)
    lut = camvid32_color_lut()
    unknown = [f"#{c:06x}" for c in colors if int(c) not in lut]
    if unknown:
        raise SemsegError(
            f"{path}: colours {', '.join(unknown[:5])} are not CamVid 32-class colours; expected class-index or colour-coded labels"
        )
    return np.asarray([lut[int(c)] for c in colors], dtype=np.uint8)[inverse].reshape(rgb.shape[:2])


def camvid_samples(root: str | Path, split: str) -> list[Sample]:
    """CamVid in the SegNet layout: <split>/<name>.png images with <split>annot/<name>.png labels.

    `split` is train, val or test. Images may also be JPEGs; labels are found by name stem, either
    `<name>.png` (class indices) or `<name>_L.png` (the original colour-coded labels).
    """
    root = Path(root)
    if split not in ("train", "val", "test"):
        raise SemsegError(f"CamVid split '{split}' must be train, val or test")
    images_dir, labels_dir = root / split, root / f"{split}annot"
    if not images_dir.is_dir():
        raise SemsegError(f"{root}: not a CamVid root (expected {split}/ and {split}annot/ under it, the SegNet layout)")
    if not labels_dir.is_dir():
        raise SemsegError(f"{labels_dir}: CamVid annotation folder missing (class-index PNGs named like the images in {images_dir})")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in CAMVID_IMAGE_SUFFIXES)

    def label(image: Path) -> Path:
        plain = labels_dir / f"{image.stem}.png"
        return plain if plain.is_file() else labels_dir / f"{image.stem}_L.png"

    return _pairs(images, label, "camvid", f"CamVid {split}")


def split_samples(data_config: DataConfig, split: str) -> tuple[list[Sample], LabelSet]:
    """The samples of one split (train, val or test) of the dataset a `data` config section describes, and
    its label set."""
    fmt, root = data_config.format, data_config.root
    if fmt == "cityscapes":
        return cityscapes_samples(root, split, coarse=data_config.coarse), get_label_set(data_config.label_set)
    if fmt == "camvid":
        return camvid_samples(root, split), get_label_set("camvid")
    if fmt == "kitti-road":
        return kitti_road_samples(root, split, data_config.kitti_road_target, data_config.val_every_nth), get_label_set("road")
    if fmt == "kitti-raw":
        return kitti_raw_samples(root, split, data_config.val_every_nth), get_label_set(data_config.label_set)
    raise SemsegError(f"data.format '{fmt}' is not one of cityscapes, camvid, kitti-road, kitti-raw")


def build_dataset(data_config: DataConfig, split: str | Sequence[str], transform: Transform | None = None) -> SegmentationDataset:
    """The dataset described by a `data` config section: the train, val or test `split`, or the images of
    several splits in the order given (`data.train_splits`, e.g. ["train", "val"])."""
    names = [split] if isinstance(split, str) else list(split)
    check_split_names(names)
    samples: list[Sample] = []
    for name in names:
        found, label_set = split_samples(data_config, name)
        samples += found
    return SegmentationDataset(samples, label_set, transform)
