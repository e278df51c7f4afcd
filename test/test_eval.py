"""Evaluation: KITTI road devkit metric and IoU against direct computations, TTA, predictions, the official
Cityscapes evaluator on our submission files, dumps and videos."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semseg_ros.cli import main
from semseg_ros.data.config import DataConfig
from semseg_ros.data.datasets import build_dataset
from semseg_ros.errors import SemsegError
from semseg_ros.eval.dataset_eval import evaluate_files, evaluate_model
from semseg_ros.eval.kitti_road import RoadCounts, road_metrics
from semseg_ros.eval.predict import run_predict, run_video
from semseg_ros.eval.tta import probabilities
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.labels import IGNORE, get_label_set
from semseg_ros.pictures import CAPTION_HEIGHT, caption_strip


def direct_road_metrics(probs: list[np.ndarray], roads: list[np.ndarray], valids: list[np.ndarray]) -> dict[str, float]:
    """REFERENCE.md section 2, written out threshold by threshold."""
    fn, fp = np.zeros(256), np.zeros(256)
    pos = neg = 0
    for prob, road, valid in zip(probs, roads, valids, strict=True):
        p = prob.astype(np.float64) / 255.0
        for k in range(256):
            t = k / 255.0
            fn[k] += np.sum(road & valid & (p < t))
            fp[k] += np.sum(~road & valid & (p >= t))
        pos += np.sum(road & valid)
        neg += np.sum(~road & valid)
    tp = pos - fn
    r = tp / pos
    pr = tp / (tp + fp + 1e-10)
    keep = ~((r == 0) & (pr == 0))
    r, pr, fn_k, fp_k, thresh = r[keep], pr[keep], fn[keep], fp[keep], (np.arange(256) / 255.0)[keep]
    ap = np.mean([max([pr[i] for i in range(len(r)) if r[i] >= level], default=0.0) for level in [i / 10 for i in range(11)]])
    f = 2 * pr * r / (pr + r + 1e-10)
    best = int(np.argmax(f))
    return {
        "MaxF": f[best],
        "AP": ap,
        "BestThresh": thresh[best],
        "PRE": pr[best],
        "REC": r[best],
        "FPR": fp_k[best] / neg,
        "FNR": fn_k[best] / pos,
        "FN": fn,
        "FP": fp,
    }


@pytest.mark.parametrize("seed", range(3))
def test_kitti_road_metric_matches_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs, roads, valids = [], [], []
    counts = RoadCounts()
    for _ in range(3):
        road = rng.random((30, 40)) < 0.4
        prob = np.clip(np.where(road, 170, 90) + rng.normal(0, 60, road.shape), 0, 255).astype(np.uint8)
        valid = rng.random(road.shape) > 0.1
        counts.add(prob, road, valid)
        probs.append(prob), roads.append(road), valids.append(valid)
    expected = direct_road_metrics(probs, roads, valids)
    np.testing.assert_array_equal(counts.fn, expected["FN"])
    np.testing.assert_array_equal(counts.fp, expected["FP"])
    got = road_metrics(counts)
    for key in ("MaxF", "AP", "BestThresh", "PRE", "REC", "FPR", "FNR"):
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key
    assert 0.5 < got["MaxF"] < 1


def test_empty_road_counts_are_nan() -> None:
    assert all(math.isnan(v) for v in road_metrics(RoadCounts()).values())


def test_tta_flip_is_equivariant_and_averages_probabilities(tiny_checkpoint: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    image = np.random.default_rng(0).integers(0, 255, (70, 200, 3), dtype=np.uint8)
    plain = probabilities(segmenter, image)
    assert torch.allclose(plain.sum(0), torch.ones(70, 200), atol=1e-5)
    assert (plain.argmax(0).numpy() == segmenter.predict(image).labels).mean() > 0.999
    flipped = probabilities(segmenter, image, scales=(0.5, 1.0), flip=True)
    mirrored = probabilities(segmenter, np.ascontiguousarray(image[:, ::-1]), scales=(0.5, 1.0), flip=True)
    assert torch.allclose(flipped, mirrored.flip(-1), atol=1e-5)  # flip TTA is exactly mirror-symmetric
    assert torch.allclose(flipped.sum(0), torch.ones(70, 200), atol=1e-5)  # divided by views, not batch size


def test_model_evaluation_cityscapes(tiny_checkpoint: Path, cityscapes_root: Path, tmp_path: Path) -> None:
    dataset = build_dataset(DataConfig(format="cityscapes", root=str(cityscapes_root)), "val")
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    result = evaluate_model(segmenter, dataset, dump_dir=tmp_path / "dump", dump_count=2, progress=False)
    assert result["images"] == 3 and set(result["classes"]) == set(segmenter.card.classes)
    assert result["classes"]["train"] is None or result["classes"]["train"] == 0.0  # absent from GT: n/a unless predicted
    assert 0 <= result["mIoU"] <= 1 and set(result["categories"]) == {"flat", "construction", "object", "nature", "sky", "human", "vehicle"}
    assert result["speed"]["fps"] > 0
    dumps = sorted((tmp_path / "dump").glob("*.png"))
    picture = cv2.imread(str(dumps[0]))
    assert len(dumps) == 2 and picture.shape == (2 * (96 + CAPTION_HEIGHT), 2 * 192, 3)
    for top, left in ((0, 0), (0, 192), (96 + CAPTION_HEIGHT, 0), (96 + CAPTION_HEIGHT, 192)):  # each panel has its caption
        strip = picture[top : top + CAPTION_HEIGHT, left : left + 192]
        assert (strip > 200).any() and (strip == 0).mean() > 0.8


def test_submission_files_score_the_same_in_the_official_evaluator(tiny_checkpoint: Path, cityscapes_root: Path, tmp_path: Path) -> None:
    evaluator = pytest.importorskip(
        "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling", reason="cityscapesscripts is not installed"
    )
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    written = run_predict(
        segmenter, cityscapes_root / "leftImg8bit" / "val", tmp_path / "results", fmt="labelid", make_zip=True, progress=False
    )
    assert len(written) == 3 and (tmp_path / "results.zip").is_file()
    ours = evaluate_files(tmp_path / "results", cityscapes_root / "gtFine" / "val", "cityscapes")
    dataset = build_dataset(DataConfig(format="cityscapes", root=str(cityscapes_root)), "val")
    assert evaluate_model(segmenter, dataset, progress=False)["mIoU"] == pytest.approx(ours["mIoU"], abs=1e-12)

    args = evaluator.args
    args.predictionPath, args.predictionWalk = str(tmp_path / "results"), None
    args.quiet, args.JSONOutput, args.evalInstLevelScore = True, False, False
    gts = sorted(str(p) for p in (cityscapes_root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    predictions = [evaluator.getPrediction(args, gt) for gt in gts]
    official = evaluator.evaluateImgLists(predictions, gts, args)
    assert official["averageScoreClasses"] == pytest.approx(ours["mIoU"], abs=1e-9)
    for name, value in ours["classes"].items():
        theirs = official["classScores"][name]
        assert (value is None and math.isnan(theirs)) or value == pytest.approx(theirs, abs=1e-9), name


def test_kitti_road_probability_files_and_model_evaluation_agree(road_checkpoint: Path, kitti_road_root: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(road_checkpoint, backend="torch")
    dataset = build_dataset(DataConfig(format="kitti-road", root=str(kitti_road_root)), "val")
    result = evaluate_model(segmenter, dataset, progress=False)
    assert set(result["kitti_road"]) >= {"all"} and 0 <= result["kitti_road"]["all"]["MaxF"] <= 1
    images = tmp_path / "val_images"
    images.mkdir()
    for sample in dataset.samples:
        (images / sample.image.name).write_bytes(sample.image.read_bytes())
    written = run_predict(segmenter, images, tmp_path / "prob", fmt="prob", progress=False)
    assert sorted(p.name for p in written) == sorted(s.label.name for s in dataset.samples)  # um_road_000004.png ...
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for sample in dataset.samples:
        (gt_dir / sample.label.name).write_bytes(sample.label.read_bytes())
    from_files = evaluate_files(tmp_path / "prob", gt_dir, "kitti-road")
    for category, metrics in result["kitti_road"].items():
        for key, value in metrics.items():
            assert from_files["kitti_road"][category][key] == pytest.approx(value, abs=1e-12), (category, key)


def test_predict_formats_overlays_and_paths(tiny_checkpoint: Path, kitti_raw_root: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    drive = next(kitti_raw_root.rglob("*_sync"))
    written = run_predict(segmenter, drive, tmp_path / "out", fmt="color", with_overlay=True, progress=False)
    assert len(written) == 5 and all(p.is_relative_to((tmp_path / "out").resolve()) for p in written)
    assert cv2.imread(str(written[0])).shape == (64, 160, 3)
    assert len(list((tmp_path / "out").rglob("*_overlay.png"))) == 5
    trainid = run_predict(segmenter, drive / "image_02" / "data" / "0000000000.png", tmp_path / "one", progress=False)
    labels = cv2.imread(str(trainid[0]), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.max() < 19


def test_video_through_ffmpeg(tiny_checkpoint: Path, kitti_raw_root: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    drive = next(kitti_raw_root.rglob("*_sync"))
    frames = run_video(segmenter, drive, tmp_path / "demo.mp4", fps=10, with_gt=True, progress=False)
    capture = cv2.VideoCapture(str(tmp_path / "demo.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert frames == 5 and count == 5
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 320  # image overlay beside the GT overlay


def test_video_gt_halves_say_which_is_which(tiny_checkpoint: Path, kitti_raw_root: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    drive = next(kitti_raw_root.rglob("*_sync"))
    run_video(segmenter, drive, tmp_path / "gt.mp4", with_gt=True, progress=False)
    ok, frame = cv2.VideoCapture(str(tmp_path / "gt.mp4")).read()
    image = cv2.imread(str(next((drive / "image_02" / "data").glob("*.png"))))
    height, width = image.shape[:2]
    assert ok and frame.shape[:2] == (height + CAPTION_HEIGHT + height % 2, 2 * width)
    left, right = frame[:CAPTION_HEIGHT, :width].astype(int), frame[:CAPTION_HEIGHT, width:].astype(int)
    truth, prediction = caption_strip("ground truth", width).astype(int), caption_strip("prediction", width).astype(int)
    # H.264 blurs the text a little: each strip is far closer to its own caption than to the other one.
    assert np.abs(left - truth).mean() * 3 < np.abs(left - prediction).mean()
    assert np.abs(right - prediction).mean() * 3 < np.abs(right - truth).mean()


def test_eval_cli_from_config_and_json(
    tiny_checkpoint: Path, cityscapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": {"format": "cityscapes", "root": str(cityscapes_root)}, "model": {"arch": "unet", "encoder": "mobilenet_v2"}}
        )
    )
    code = main(
        [
            "eval",
            str(config),
            "--checkpoint",
            str(tiny_checkpoint),
            "--backend",
            "torch",
            "--tta",
            "--scales",
            "0.5,1.0",
            "--json",
            str(tmp_path / "r.json"),
            "--dump",
            str(tmp_path / "dump"),
            "--dump-count",
            "1",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert f"pictures (image, ground truth, prediction, errors) of the first 1 image in {tmp_path / 'dump'}" in captured.out
    assert len(list((tmp_path / "dump").glob("*_eval.png"))) == 1
    assert "mIoU" in captured.out and "ms per image" in captured.out and (tmp_path / "r.json").is_file()
    # the TTA is named where the run starts and under the table (before: nowhere on the console)
    assert (
        captured.out.count(
            "test-time augmentation: scales 0.5, 1 (sizes rounded to multiples of 32) and horizontal flips, softmax averaged"
        )
        == 2
    )
    assert json.loads((tmp_path / "r.json").read_text())["tta"] == {"scales": [0.5, 1.0], "flip": True}
    assert "image/s" not in captured.err and "\r" not in captured.err  # no progress bar when stderr is no terminal (piped into the table)
    assert main(["eval", "--pred", str(tmp_path), "--gt", str(tmp_path)]) == 2
    assert "file mode needs" in capsys.readouterr().err
    assert main(["eval", str(config), "--checkpoint", str(tiny_checkpoint), "--scales", "0.5,1"]) == 2  # before: ignored without a word
    assert "--scales sets the test-time augmentation's scales: add --tta" in capsys.readouterr().err


def test_ignore_labels_do_not_count(tiny_checkpoint: Path) -> None:
    from semseg_ros.eval.dataset_eval import Accumulator
    from semseg_ros.labels import get_label_set

    accumulator = Accumulator(get_label_set("cityscapes19"), None)
    gt = np.full((4, 4), IGNORE, np.uint8)
    gt[0, 0] = 0
    accumulator.add(gt, np.zeros((4, 4), np.uint8), None, "x.png")
    result = accumulator.result()
    assert result["classes"]["road"] == 1.0 and result["classes"]["sky"] is None and result["mIoU"] == 1.0


# ---------------------------------------------------------------- id spaces, label PNG forms, predict's outputs
def _gt_as_predictions(cityscapes_root: Path, out: Path, ids: str, mode: str = "L") -> None:
    """The val GT itself written as prediction PNGs: label ids as they are, or mapped to trainIds."""
    from PIL import Image

    from semseg_ros.labels import cityscapes_id_palette, get_label_set

    label_set = get_label_set("cityscapes19")
    for gt in (cityscapes_root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"):
        values = cv2.imread(str(gt), cv2.IMREAD_UNCHANGED)
        if ids == "trainid":
            values = label_set.map_cityscapes_ids(values)
        image = Image.fromarray(values, "L")
        if mode == "P":
            image = image.convert("P")
            image.putpalette(cityscapes_id_palette().ravel().tolist())
        target = out / gt.parent.name / gt.name.replace("_gtFine_labelIds", "_pred")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target)


def test_train_id_predictions_are_detected_and_scored_right(
    cityscapes_root: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`semseg predict`'s default (trainIds) then `semseg eval --format cityscapes` scored 0.0003 before."""
    gt_dir = cityscapes_root / "gtFine" / "val"
    for ids in ("labelid", "trainid"):
        _gt_as_predictions(cityscapes_root, tmp_path / ids, ids)
        result = evaluate_files(tmp_path / ids, gt_dir, "cityscapes")
        assert result["mIoU"] == 1.0 and (result["ids"], result["ids_detected"]) == (ids, True)
    assert evaluate_files(tmp_path / "trainid", gt_dir, "cityscapes", ids="labelid")["mIoU"] < 0.2  # forcing the wrong space
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    images = cityscapes_root / "leftImg8bit" / "val"
    run_predict(segmenter, images, tmp_path / "model_trainid", progress=False)
    run_predict(segmenter, images, tmp_path / "model_labelid", fmt="labelid", progress=False)
    as_label_ids = evaluate_files(tmp_path / "model_labelid", gt_dir, "cityscapes")
    as_train_ids = evaluate_files(tmp_path / "model_trainid", gt_dir, "cityscapes")
    assert (as_label_ids["ids"], as_train_ids["ids"]) == ("labelid", "trainid")
    assert as_train_ids["classes"] == as_label_ids["classes"]
    assert main(["eval", "--pred", str(tmp_path / "model_trainid"), "--gt", str(gt_dir), "--format", "cityscapes"]) == 0
    assert "predictions read as trainIds 0..18 (detected from the values" in capsys.readouterr().out


def test_palette_label_pngs_read_as_the_official_evaluator_reads_them(cityscapes_root: Path, tmp_path: Path) -> None:
    """8-bit palette PNGs in Cityscapes colours (the official evaluator reads their indices) were refused before."""
    from PIL import Image

    _gt_as_predictions(cityscapes_root, tmp_path / "pred", "labelid", mode="P")
    some = next((tmp_path / "pred").rglob("*.png"))
    assert Image.open(some).mode == "P"
    result = evaluate_files(tmp_path / "pred", cityscapes_root / "gtFine" / "val", "cityscapes")
    assert (result["ids"], result["mIoU"]) == ("labelid", 1.0)


def _save_label(path: Path, values: np.ndarray, mode: str) -> None:
    from PIL import Image

    if mode == "I;16":
        Image.fromarray(values.astype(np.uint16)).save(path)
    elif mode == "1":
        Image.fromarray(values % 2 == 1).save(path)
    elif mode == "P":
        image = Image.fromarray(values.astype(np.uint8), "L").convert("P")
        image.putpalette(np.random.default_rng(int(values.sum())).integers(0, 256, 768).tolist())
        image.save(path)
    else:
        Image.fromarray(values.astype(np.uint8), "L").convert(mode).save(path)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["L", "P", "1", "I;16", "RGB", "RGBA", "LA"]),
    values=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=st.integers(0, 400)),
)
def test_every_png_form_reads_as_the_official_evaluator_reads_it_or_is_refused_with_the_reason(
    tmp_path_factory: pytest.TempPathFactory, mode: str, values: np.ndarray
) -> None:
    from PIL import Image

    from semseg_ros.data.images import read_label_png
    from semseg_ros.errors import SemsegError

    if mode != "I;16":
        values = values % 256
    path = tmp_path_factory.mktemp("png") / "label.png"
    _save_label(path, values, mode)
    official = np.array(Image.open(path))  # csEvalPixelLevelSemanticLabeling: np.array(Image.open(file))
    if mode in ("RGB", "RGBA", "LA") or official.max() > 255:
        event("refused")
        with pytest.raises(SemsegError, match=f"a {mode} PNG|16-bit label values up to {official.max()}"):
            read_label_png(path)
        return
    event("read")
    labels = read_label_png(path)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, official.astype(np.int64))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a readable image"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "not a readable image"), ("jpeg", "must be a PNG")],
)
def test_broken_and_foreign_label_files_are_refused_with_the_reason(tmp_path: Path, content: object, message: str) -> None:
    from semseg_ros.data.images import read_label_png
    from semseg_ros.errors import SemsegError

    path = tmp_path / "label.png"
    if content == "jpeg":
        cv2.imwrite(str(tmp_path / "x.jpg"), np.zeros((8, 8), np.uint8))
        (tmp_path / "x.jpg").rename(path)
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    with pytest.raises(SemsegError, match=message):
        read_label_png(path)


def test_predict_never_overwrites_an_input_or_its_own_results(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from semseg_ros.errors import SemsegError

    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    photos = tmp_path / "photos"
    photos.mkdir()
    picture = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(photos / "x.png"), picture)
    cv2.imwrite(str(photos / "x.jpg"), picture)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    with pytest.raises(SemsegError, match=r"x\.(jpg|png) and .*x\.(jpg|png) would both be written to .*x\.png"):
        run_predict(segmenter, photos, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    (photos / "x.jpg").rename(photos / "y.jpg")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    with pytest.raises(SemsegError, match=r"would overwrite the input .*x\.png"):
        run_predict(segmenter, photos, photos, progress=False)
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    cv2.imwrite(str(photos / "y_overlay.png"), picture)  # y's overlay and y_overlay's result share a name
    with pytest.raises(SemsegError, match=r"would both be written to .*y_overlay\.png"):
        run_predict(segmenter, photos, tmp_path / "out2", with_overlay=True, progress=False)
    (photos / "y_overlay.png").unlink()
    assert sorted(p.name for p in run_predict(segmenter, photos, tmp_path / "out3", progress=False)) == ["x.png", "y.png"]


def test_predict_skips_unreadable_images_and_lists_them(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    picture = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    for name in ("a.png", "c.jpg"):
        cv2.imwrite(str(photos / name), picture)
    (photos / "b.png").write_bytes((photos / "a.png").read_bytes()[:100])  # truncated
    (photos / "d.jpg").write_bytes(b"not a jpeg")
    code = main(
        ["predict", "--checkpoint", str(tiny_checkpoint), "--backend", "torch", "--input", str(photos), "--output", str(tmp_path / "out")]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("semseg predict:")]  # not tqdm's bar
    assert code == 2 and len(err) == 1, err
    err = err[0]
    assert "2 of 4 images could not be read and were skipped (2 written" in err and "b.png" in err and "d.jpg" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_label_ids_that_fit_the_train_id_range_are_flagged(
    cityscapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by an adversary: a perfect label-id prediction holding only road, sidewalk and building (7, 8, 11)
    read as trainIds scored 0.0 without a word; auto still reads it so, but says what label ids would score."""
    from PIL import Image

    gt_dir = cityscapes_root / "gtFine" / "val"
    for gt in gt_dir.rglob("*_gtFine_labelIds.png"):
        values = np.where(np.isin(cv2.imread(str(gt), cv2.IMREAD_UNCHANGED), [7, 8, 11]), cv2.imread(str(gt), cv2.IMREAD_UNCHANGED), 7)
        target = tmp_path / "pred" / gt.parent.name / gt.name.replace("_gtFine_labelIds", "_pred")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(values.astype(np.uint8), "L").save(target)
    result = evaluate_files(tmp_path / "pred", gt_dir, "cityscapes")
    assert result["ids"] == "trainid" and result["ids_ambiguous"]["labelid_mIoU"] > result["mIoU"]
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(gt_dir), "--format", "cityscapes"]) == 0
    assert "if the files hold label ids, use --ids labelid" in capsys.readouterr().out
    assert "ids_ambiguous" not in evaluate_files(tmp_path / "pred", gt_dir, "cityscapes", ids="labelid")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (the Debian package make setup installs)")
def test_an_ffmpeg_failure_is_one_error_with_ffmpegs_reason(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """ffmpeg's own lines once landed on the terminal over the progress bar, then a reasonless error."""
    from semseg_ros.eval.predict import VideoWriter

    writer = VideoWriter(tmp_path / "video.unknown-format", fps=10.0)
    with pytest.raises(SemsegError, match=r"ffmpeg failed to write \S*video\.unknown-format: \S"):
        for _ in range(3):
            writer.write(np.zeros((32, 48, 3), np.uint8))
        writer.close()
    assert capfd.readouterr().err == ""  # nothing from ffmpeg itself


def test_legend_strip_shows_every_entry_and_wraps() -> None:
    from semseg_ros.pictures import legend_strip

    labels = get_label_set("cityscapes19")
    entries = [(name, tuple(int(v) for v in color)) for name, color in zip(labels.classes, labels.colors, strict=True)]
    strip = legend_strip(400, entries)
    assert strip.shape[1] == 400 and strip.shape[0] > 40  # 19 names do not fit one 400-pixel row
    for _, color in entries:
        assert (strip == color).all(axis=2).sum() >= 16 * 12  # each swatch drawn whole
