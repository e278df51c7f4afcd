"""Datasets over the real layouts (tested on synthetic output) and the albumentations pipelines."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from semseg_ros.data.config import AugmentConfig, DataConfig
from semseg_ros.data.datasets import build_dataset, cityscapes_samples, kitti_road_samples
from semseg_ros.data.transforms import collate_eval, describe_augment, eval_pipeline, train_pipeline
from semseg_ros.errors import SemsegError
from semseg_ros.labels import IGNORE, get_label_set


def test_cityscapes_pairs_and_label_mapping(cityscapes_root: Path) -> None:
    train = build_dataset(DataConfig(format="cityscapes", root=str(cityscapes_root)), "train")
    val = build_dataset(DataConfig(format="cityscapes", root=str(cityscapes_root)), "val")
    assert len(train) == 6 and len(val) == 3
    image, mask = train[0]
    assert image.shape == (96, 192, 3) and image.dtype == np.uint8 and mask.shape == (96, 192)
    label_ids = cv2.imread(str(train.samples[0].label), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, get_label_set("cityscapes19").map_cityscapes_ids(label_ids))
    assert set(np.unique(mask)) <= set(range(19)) | {IGNORE}
    categories = build_dataset(DataConfig(format="cityscapes", root=str(cityscapes_root), label_set="categories"), "train")
    assert set(np.unique(categories[0][1])) <= set(range(7)) | {IGNORE}


def test_cityscapes_coarse_adds_train_extra(cityscapes_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "cs"
    shutil.copytree(cityscapes_root, root)
    source = next((root / "leftImg8bit" / "train").glob("*/*.png"))
    extra_image = root / "leftImg8bit" / "train_extra" / "extracity" / "extracity_000000_000000_leftImg8bit.png"
    extra_label = root / "gtCoarse" / "train_extra" / "extracity" / "extracity_000000_000000_gtCoarse_labelIds.png"
    extra_image.parent.mkdir(parents=True)
    extra_label.parent.mkdir(parents=True)
    shutil.copy(source, extra_image)
    cv2.imwrite(str(extra_label), np.full((96, 192), 7, np.uint8))
    assert len(cityscapes_samples(root, "train", coarse=True)) == len(cityscapes_samples(root, "train")) + 1


def test_kitti_road_split_and_decoding(kitti_road_root: Path) -> None:
    train = kitti_road_samples(kitti_road_root, "train")
    val = kitti_road_samples(kitti_road_root, "val")
    assert len(train) + len(val) == 15 and len(val) == 3
    assert not {s.image for s in train} & {s.image for s in val}
    assert kitti_road_samples(kitti_road_root, "val") == val  # deterministic
    dataset = build_dataset(DataConfig(format="kitti-road", root=str(kitti_road_root)), "train")
    _, mask = dataset[0]
    gt = cv2.imread(str(dataset.samples[0].label))
    np.testing.assert_array_equal(mask, (gt[..., 0] > 0).astype(np.uint8))
    lanes = kitti_road_samples(kitti_road_root, "train", target="lane")
    assert lanes and all(s.image.name.startswith("um_") and "_lane_" in s.label.name for s in lanes)


def test_kitti_raw_drives(kitti_raw_root: Path) -> None:
    dataset = build_dataset(DataConfig(format="kitti-raw", root=str(kitti_raw_root)), "train")
    assert len(dataset) == 4
    image, mask = dataset[0]
    assert image.shape == (64, 160, 3) and (mask == 0).any()  # road is trainId 0


def test_clear_errors(cityscapes_root: Path, tmp_path: Path) -> None:
    with pytest.raises(SemsegError, match="not a Cityscapes root"):
        cityscapes_samples(tmp_path / "missing", "train")
    (tmp_path / "empty" / "leftImg8bit").mkdir(parents=True)
    with pytest.raises(SemsegError, match=r"Cityscapes split 'train' is not under .*leftImg8bit \(splits there: none\)"):
        cityscapes_samples(tmp_path / "empty", "train")
    (tmp_path / "empty" / "leftImg8bit" / "train").mkdir()
    with pytest.raises(SemsegError, match="no Cityscapes train images found"):
        cityscapes_samples(tmp_path / "empty", "train")
    root = tmp_path / "cs"
    shutil.copytree(cityscapes_root, root)
    victim = sorted((root / "gtFine" / "train").glob("*/*_labelIds.png"))[0]
    victim.unlink()
    with pytest.raises(SemsegError, match=f"have no label file.*{victim.name}"):
        cityscapes_samples(root, "train")
    with pytest.raises(SemsegError, match="not a KITTI road root"):
        kitti_road_samples(tmp_path, "train")


def test_train_pipeline_is_seeded_per_sample(cityscapes_root: Path) -> None:
    dataset = build_dataset(DataConfig(format="cityscapes", root=str(cityscapes_root)), "train")
    dataset.transform = train_pipeline((64, 128), AugmentConfig(hard_augs=True, hard_augs_p=1.0), (0.5,) * 3, (0.25,) * 3)
    image, mask = dataset[1]
    assert image.shape == (3, 64, 128) and image.dtype == torch.float32 and mask.shape == (64, 128) and mask.dtype == torch.int64
    again, _ = dataset[1]
    assert torch.equal(image, again)
    dataset.set_epoch(1)
    assert not torch.equal(image, dataset[1][0])


def test_camera_effects_change_the_look_and_never_the_labels() -> None:
    """augment.camera: exposure, white balance, noise, blur and JPEG act on the image only; 0 adds nothing."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    mask = rng.integers(0, 11, (96, 128), dtype=np.uint8)
    no_crop = {"scale": (1.0, 1.0), "hflip": 0.0, "color": 0.0}
    plain = train_pipeline((96, 128), AugmentConfig(**no_crop), (0.0,) * 3, (1.0,) * 3, seed=3)
    camera = train_pipeline((96, 128), AugmentConfig(camera=1.0, **no_crop), (0.0,) * 3, (1.0,) * 3, seed=3)
    plain_image, plain_mask = plain(image, mask)
    camera_image, camera_mask = camera(image, mask)
    assert torch.equal(plain_mask, torch.from_numpy(mask).long()) and torch.equal(camera_mask, plain_mask)
    assert torch.allclose(plain_image, torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float(), atol=1e-6)
    assert (camera_image - plain_image).abs().mean() > 0.02  # every effect at p=1: the look changed
    # The console says which are on (before, only config.yaml recorded camera effects).
    assert describe_augment(AugmentConfig(camera=0.3)).endswith("weather off, camera effects 0.3")
    assert describe_augment(AugmentConfig(hard_augs=True)).endswith("weather 0.3, camera effects off")
    assert describe_augment(AugmentConfig(hard_augs=True, hard_augs_p=0.0)).endswith("weather off, camera effects off")


def test_eval_pipeline_keeps_full_resolution_masks(cityscapes_root: Path) -> None:
    dataset = build_dataset(
        DataConfig(format="cityscapes", root=str(cityscapes_root)), "val", eval_pipeline((32, 64), (0.5,) * 3, (0.25,) * 3)
    )
    images, masks = collate_eval([dataset[0], dataset[1]])
    assert images.shape == (2, 3, 32, 64) and [m.shape for m in masks] == [(96, 192), (96, 192)]


def write_camvid(root: Path, split: str, names: list[str], rng: np.random.Generator, colour_coded: bool = False) -> list[np.ndarray]:
    """A CamVid tree in the SegNet layout; returns the class-index labels written (11 = void)."""
    from semseg_ros.labels import CAMVID32_COLORS

    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
    labels = []
    for name in names:
        cv2.imwrite(str(root / split / f"{name}.png"), rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
        label = rng.integers(0, 12, (36, 48), dtype=np.uint8)
        labels.append(label)
        if colour_coded:  # one original class per 11-class id: Sky, Wall, Column_Pole, LaneMkgsDriv, ...
            originals = [
                "Sky",
                "Wall",
                "Column_Pole",
                "LaneMkgsDriv",
                "ParkingBlock",
                "VegetationMisc",
                "Misc_Text",
                "Fence",
                "SUVPickupTruck",
                "Child",
                "MotorcycleScooter",
                "Void",
            ]
            rgb = np.array([CAMVID32_COLORS[o] for o in originals], np.uint8)[label]
            cv2.imwrite(str(root / f"{split}annot" / f"{name}_L.png"), rgb[..., ::-1])
        else:
            cv2.imwrite(str(root / f"{split}annot" / f"{name}.png"), label)
    return labels


@pytest.mark.parametrize("colour_coded", [False, True])
def test_camvid_reads_class_index_and_original_colour_labels(tmp_path: Path, colour_coded: bool) -> None:
    rng = np.random.default_rng(0)
    written = {
        split: write_camvid(tmp_path, split, [f"0001TP_{i:06d}" for i in range(3)], rng, colour_coded) for split in ("train", "val", "test")
    }
    for split in ("train", "val", "test"):
        dataset = build_dataset(DataConfig(format="camvid", root=str(tmp_path)), split)
        assert dataset.label_set.name == "camvid" and len(dataset) == 3
        for index, label in enumerate(written[split]):
            image, mask = dataset.load(index)
            assert image.shape == (36, 48, 3)
            np.testing.assert_array_equal(mask, np.where(label == 11, IGNORE, label))


def test_camvid_errors_name_the_file(tmp_path: Path) -> None:
    write_camvid(tmp_path, "train", ["a", "b"], np.random.default_rng(1))
    with pytest.raises(SemsegError, match=r"valannot.*CamVid annotation folder missing"):
        (tmp_path / "val").mkdir()
        build_dataset(DataConfig(format="camvid", root=str(tmp_path)), "val")
    (tmp_path / "trainannot" / "b.png").unlink()
    with pytest.raises(SemsegError, match=r"1 of 2 CamVid train images have no label file, e.g. .*b.png"):
        build_dataset(DataConfig(format="camvid", root=str(tmp_path)), "train")
    cv2.imwrite(str(tmp_path / "trainannot" / "b.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(SemsegError, match=r"b.png: label size \(10, 10\) differs from image"):
        build_dataset(DataConfig(format="camvid", root=str(tmp_path)), "train").load(1)
    cv2.imwrite(str(tmp_path / "trainannot" / "b.png"), np.full((36, 48, 3), (1, 2, 3), np.uint8))
    with pytest.raises(SemsegError, match="#030201 are not CamVid 32-class colours"):
        build_dataset(DataConfig(format="camvid", root=str(tmp_path)), "train").load(1)
    with pytest.raises(SemsegError, match="not a CamVid root"):
        build_dataset(DataConfig(format="camvid", root=str(tmp_path / "nothing")), "train")
