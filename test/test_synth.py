"""The synthetic KITTI world: formats, determinism and camera/lidar ground-truth agreement."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from semseg_ros.calibration import Calibration
from semseg_ros.cli import main
from semseg_ros.data.kitti_raw import KittiDrive, read_point_labels, read_timestamps, read_velodyne
from semseg_ros.fusion.bev import render_bev
from semseg_ros.labels import CITYSCAPES_ID, CITYSCAPES_LABELS, cityscapes_id_palette

FRAMES = 3
THING_IDS = {lab.id for lab in CITYSCAPES_LABELS if lab.has_instances}
KNOWN_IDS = {lab.id for lab in CITYSCAPES_LABELS if lab.id >= 0}


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> KittiDrive:
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--frames", str(FRAMES), "--seed", "7", "--drive", "3", "--quiet"]) == 0
    return KittiDrive(out / "2011_09_26" / "2011_09_26_drive_0003_sync")


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_layout_matches_kitti_raw(drive: KittiDrive) -> None:
    date_dir = drive.path.parent
    assert date_dir.name == "2011_09_26"
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt"):
        assert (date_dir / name).is_file()
    names = [f"{k:010d}" for k in range(FRAMES)]
    assert drive.frames() == names
    for sub, suffix in (
        ("image_02/data", ".png"),
        ("image_02/semantic", ".png"),
        ("image_02/depth", ".png"),
        ("velodyne_points/data", ".bin"),
        ("velodyne_points/labels", ".label"),
        ("oxts/data", ".txt"),
    ):
        assert sorted(p.name for p in (drive.path / sub).iterdir()) == [n + suffix for n in names], sub
    for stamps in (
        "image_02/timestamps.txt",
        "velodyne_points/timestamps.txt",
        "velodyne_points/timestamps_start.txt",
        "velodyne_points/timestamps_end.txt",
        "oxts/timestamps.txt",
    ):
        lines = (drive.path / stamps).read_text().splitlines()
        assert len(lines) == FRAMES
        assert all(re.fullmatch(r"2011-09-26 \d\d:\d\d:\d\d\.\d{9}", line) for line in lines), lines


def test_timestamps_run_at_10_hz_and_bracket_the_sweep(drive: KittiDrive) -> None:
    camera = read_timestamps(drive.image_dir / "timestamps.txt")
    velo = read_timestamps(drive.velodyne_dir / "timestamps.txt")
    start = read_timestamps(drive.velodyne_dir / "timestamps_start.txt")
    end = read_timestamps(drive.velodyne_dir / "timestamps_end.txt")
    np.testing.assert_allclose(np.diff(camera), 100_000_000, atol=1_000)
    assert np.all(np.abs(camera - velo) < 5_000_000)
    assert np.all((start < velo) & (velo < end))


def test_images_and_ground_truth_files(drive: KittiDrive) -> None:
    frame = drive.frames()[0]
    rgb = read_png(drive.image_path(frame))
    semantic = read_png(drive.image_dir / "semantic" / f"{frame}.png")
    depth = read_png(drive.image_dir / "depth" / f"{frame}.png")
    assert rgb.shape == (375, 1242, 3) and rgb.dtype == np.uint8
    assert semantic.shape == (375, 1242) and semantic.dtype == np.uint8
    assert depth.shape == (375, 1242) and depth.dtype == np.uint16
    assert set(np.unique(semantic)) <= KNOWN_IDS
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "car"):
        assert (semantic == CITYSCAPES_ID[name]).any(), name
    sky = semantic == CITYSCAPES_ID["sky"]
    assert (depth[sky] == 0).all() and (depth[~sky] > 0).all()
    # Texture and noise: a network must learn, a colour threshold must not be enough.
    road = semantic == CITYSCAPES_ID["road"]
    assert rgb[road].std(axis=0).min() > 8


def test_sweeps_look_like_an_hdl64(drive: KittiDrive) -> None:
    for frame in drive.frames():
        points = read_velodyne(drive.velodyne_path(frame))
        labels, instances = read_point_labels(drive.velodyne_dir / "labels" / f"{frame}.label")
        assert points.dtype == np.float32 and points.shape[1] == 4
        assert 100_000 <= len(points) <= 135_000
        assert len(labels) == len(points)
        ranges = np.linalg.norm(points[:, :3], axis=1)
        assert ranges.max() < 120.5 and ranges.min() > 0.5
        assert points[:, 3].min() >= 0 and points[:, 3].max() <= 1
        elevation = np.degrees(np.arcsin(points[:, 2] / ranges))
        assert elevation.max() < 2.3 and elevation.min() > -25.2
        ground = labels == CITYSCAPES_ID["road"]
        assert abs(np.median(points[ground, 2]) + 1.73) < 0.05  # the sensor is 1.73 m above the road
        assert set(np.unique(labels)) <= KNOWN_IDS
        is_thing = np.isin(labels, list(THING_IDS))
        assert (instances[is_thing] > 0).all() and (instances[~is_thing] == 0).all()


def test_written_calibration_is_the_real_one(drive: KittiDrive) -> None:
    calib = drive.calibration
    assert calib.image_size == (1242, 375)
    assert calib.projection[0, 3] == pytest.approx(4.485728e01)
    assert calib.velo_to_cam[2, 3] == pytest.approx(-2.717806e-01)


def test_lidar_labels_agree_with_camera_labels(drive: KittiDrive, tmp_path: Path) -> None:
    """Projecting GT-labelled points through the written calibration lands them on same-label pixels."""
    calib = Calibration.from_kitti_raw(drive.path.parent)
    agree = total = 0
    for frame in drive.frames():
        points = read_velodyne(drive.velodyne_path(frame))
        labels, _ = read_point_labels(drive.velodyne_dir / "labels" / f"{frame}.label")
        semantic = read_png(drive.image_dir / "semantic" / f"{frame}.png")
        depth = read_png(drive.image_dir / "depth" / f"{frame}.png").astype(np.float64) / 256.0
        rows, cols, point_depth, valid = calib.pixel_indices(points)
        seen = depth[rows, cols]
        visible = valid & (seen > 0) & (np.abs(point_depth - seen) < 0.2 + 0.03 * seen)
        assert visible.sum() > 10_000
        agree += int((semantic[rows[visible], cols[visible]] == labels[visible]).sum())
        total += int(visible.sum())
    assert agree / total >= 0.97, f"only {agree / total:.2%} of {total} visible points agree"


def test_picture_check(drive: KittiDrive, tmp_path: Path) -> None:
    """Writes one frame's image, GT colours and labelled bird's-eye view for a person to look at."""
    frame = drive.frames()[-1]
    palette = cityscapes_id_palette()
    rgb = read_png(drive.image_path(frame))
    semantic = read_png(drive.image_dir / "semantic" / f"{frame}.png")
    points = read_velodyne(drive.velodyne_path(frame))
    labels, _ = read_point_labels(drive.velodyne_dir / "labels" / f"{frame}.label")
    bev = render_bev(points, palette[labels])
    overlay = (0.5 * rgb + 0.5 * palette[semantic][..., ::-1]).astype(np.uint8)
    for name, image in (
        ("image.png", rgb),
        ("gt_color.png", palette[semantic][..., ::-1]),
        ("overlay.png", overlay),
        ("bev.png", bev[..., ::-1]),
    ):
        assert cv2.imwrite(str(tmp_path / name), image)
    # The top view shows road, buildings and cars in their own colours.
    colours = {tuple(c) for c in bev.reshape(-1, 3)}
    for name in ("road", "building", "car", "sidewalk"):
        assert tuple(palette[CITYSCAPES_ID[name]]) in colours, name


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path) -> None:
    def render(out: Path, seed: int) -> list[bytes]:
        assert main(["synth", "--out", str(out), "--frames", "2", "--seed", str(seed), "--width", "160", "--height", "48", "--quiet"]) == 0
        drive_dir = out / "2011_09_26" / "2011_09_26_drive_0001_sync"
        return [p.read_bytes() for p in sorted(drive_dir.rglob("*")) if p.is_file()]

    first, second, other = render(tmp_path / "a", 1), render(tmp_path / "b", 1), render(tmp_path / "c", 2)
    assert first == second
    assert first != other


def test_randomised_appearance_changes_the_look_of_each_world_and_nothing_else(tmp_path: Path) -> None:
    """Domain randomisation: the same labels as with the plain look; images of another look, one
    per world (a road's mean colour differs between worlds more than between frames of one world)."""

    def render(out: Path, *extra: str) -> Path:
        args = ["synth", "--format", "cityscapes", "--out", str(out), "--frames", "2", "--sequences", "4", "--val-sequences", "1"]
        assert main([*args, "--width", "192", "--height", "96", "--seed", "3", "--quiet", *extra]) == 0
        return out

    plain, randomised = render(tmp_path / "plain"), render(tmp_path / "dr", "--randomise-appearance")
    labels = sorted(p.relative_to(plain) for p in (plain / "gtFine").rglob("*.png"))
    assert labels and labels == sorted(p.relative_to(randomised) for p in (randomised / "gtFine").rglob("*.png"))
    for name in labels:
        assert (plain / name).read_bytes() == (randomised / name).read_bytes(), name
    road = CITYSCAPES_ID["road"]
    colours: dict[str, list[np.ndarray]] = {}
    for image in sorted((randomised / "leftImg8bit").rglob("*.png")):
        stem = image.name.replace("_leftImg8bit.png", "")
        label = read_png(plain / "gtFine" / image.parent.relative_to(randomised / "leftImg8bit") / f"{stem}_gtFine_labelIds.png")
        before = read_png(plain / image.relative_to(randomised))
        after = read_png(image)
        assert after.shape == before.shape and np.abs(after.astype(int) - before).mean() > 5
        colours.setdefault(stem.split("_")[1], []).append(after[label == road].mean(axis=0))
    within = max(float(np.abs(a - b).max()) for a, b in colours.values())
    between = max(float(np.abs(colours[x][0] - colours[y][0]).max()) for x in colours for y in colours)
    assert len(colours) == 4 and between > 2 * within, (within, between)


def test_cityscapes_format(tmp_path: Path) -> None:
    assert (
        main(
            [
                "synth",
                "--format",
                "cityscapes",
                "--out",
                str(tmp_path),
                "--frames",
                "2",
                "--sequences",
                "3",
                "--width",
                "256",
                "--height",
                "128",
                "--quiet",
            ]
        )
        == 0
    )
    images = sorted((tmp_path / "leftImg8bit").rglob("*_leftImg8bit.png"))
    assert len(images) == 6
    splits = {p.parent.parent.name for p in images}
    assert splits == {"train", "val"}
    train_seqs = {p.name.split("_")[1] for p in images if p.parent.parent.name == "train"}
    val_seqs = {p.name.split("_")[1] for p in images if p.parent.parent.name == "val"}
    assert len(train_seqs) == 2 and len(val_seqs) == 1 and not train_seqs & val_seqs
    for image in images:
        assert re.fullmatch(r"[a-z]+_\d{6}_\d{6}_leftImg8bit\.png", image.name)
        rel = image.relative_to(tmp_path / "leftImg8bit")
        stem = image.name.replace("_leftImg8bit.png", "")
        gt_dir = tmp_path / "gtFine" / rel.parent
        label_ids = read_png(gt_dir / f"{stem}_gtFine_labelIds.png")
        instance_ids = read_png(gt_dir / f"{stem}_gtFine_instanceIds.png")
        color = read_png(gt_dir / f"{stem}_gtFine_color.png")
        assert read_png(image).shape == (128, 256, 3)
        assert label_ids.dtype == np.uint8 and label_ids.shape == (128, 256)
        assert instance_ids.dtype == np.uint16
        # instanceIds: label id * 1000 + instance for things, the plain label id otherwise.
        np.testing.assert_array_equal(np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids), label_ids)
        np.testing.assert_array_equal(color[..., ::-1], cityscapes_id_palette()[label_ids])


def test_kitti_road_format(tmp_path: Path) -> None:
    assert (
        main(["synth", "--format", "kitti-road", "--out", str(tmp_path), "--frames", "2", "--width", "320", "--height", "96", "--quiet"])
        == 0
    )
    training = tmp_path / "data_road" / "training"
    images = sorted(p.name for p in (training / "image_2").iterdir())
    assert images == [f"{c}_{k:06d}.png" for c in ("um", "umm", "uu") for k in range(2)]
    for name in images:
        category, index = name[:-4].split("_")
        gt = read_png(training / "gt_image_2" / f"{category}_road_{index}.png")  # BGR
        road, valid = gt[..., 0] > 0, gt[..., 2] > 0
        assert valid.all() and 0.05 < road.mean() < 0.7
        lane = training / "gt_image_2" / f"{category}_lane_{index}.png"
        assert lane.exists() == (category == "um")
        if category == "um":
            ego_lane = read_png(lane)[..., 0] > 0
            assert ego_lane.any() and not (ego_lane & ~road).any() and ego_lane.sum() < road.sum()
        calib = Calibration.from_kitti_object(training / "calib" / f"{category}_{index}.txt", image_size=(320, 96))
        centre, dirs = calib.camera_rays()
        rows, cols, _, valid = calib.pixel_indices((centre + dirs[48, 160] * 10)[None])
        assert valid.all() and (rows[0], cols[0]) == (48, 160)
        assert calib.projection[0, 0] == pytest.approx(721.5377 * 320 / 1242)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--width", "8"], "too small"),
        (["--drive", "12345"], "must be in 0..9999"),
        (["--format", "cityscapes", "--sequences", "1"], "--val-sequences must be smaller"),
    ],
)
def test_bad_arguments_exit_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["synth", "--out", str(tmp_path), "--frames", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("semseg synth: error:")


def test_unwritable_output_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["synth", "--out", str(blocker), "--frames", "1", "--quiet"]) == 2
    assert "semseg synth: error:" in capsys.readouterr().err
