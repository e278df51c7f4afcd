"""Evaluation: KITTI road devkit metric and IoU against direct computations, TTA, predictions, the official
Cityscapes evaluator on our submission files, dumps and videos."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from semseg_ros.cli import main
from semseg_ros.data.datasets import build_dataset
from semseg_ros.eval.kitti_road import RoadCounts, road_metrics
from semseg_ros.eval.predict import run_predict, run_video
from semseg_ros.eval.runner import evaluate_files, evaluate_model
from semseg_ros.eval.tta import probabilities
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.labels import IGNORE
from semseg_ros.train.config import DataConfig


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
    assert len(dumps) == 2 and cv2.imread(str(dumps[0])).shape == (2 * 96, 2 * 192, 3)


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
            "1.0",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "ms per image" in out and (tmp_path / "r.json").is_file()
    assert main(["eval", "--pred", str(tmp_path), "--gt", str(tmp_path)]) == 2
    assert "file mode needs" in capsys.readouterr().err


def test_ignore_labels_do_not_count(tiny_checkpoint: Path) -> None:
    from semseg_ros.eval.runner import Accumulator
    from semseg_ros.labels import get_label_set

    accumulator = Accumulator(get_label_set("cityscapes19"), None)
    gt = np.full((4, 4), IGNORE, np.uint8)
    gt[0, 0] = 0
    accumulator.add(gt, np.zeros((4, 4), np.uint8), None, "x.png")
    result = accumulator.result()
    assert result["classes"]["road"] == 1.0 and result["classes"]["sky"] is None and result["mIoU"] == 1.0
