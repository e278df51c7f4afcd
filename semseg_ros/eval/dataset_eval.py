"""Evaluate a model (through the Segmenter API) or a folder of prediction files on a dataset.

Results are one dict (printed as a table, written as JSON): per-class IoU (None = n/a: the class
is absent from both GT and predictions), mIoU, pixel accuracy, Cityscapes category IoU, KITTI road
MaxF/AP per category (um, umm, uu, all), and speed.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from semseg_ros.data.datasets import SegmentationDataset, read_road_gt
from semseg_ros.data.images import read_label_png
from semseg_ros.errors import SemsegError
from semseg_ros.eval.kitti_road import RoadCounts, road_metrics
from semseg_ros.eval.metrics import ConfusionMatrix
from semseg_ros.eval.tta import probabilities
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.labels import CATEGORY_COLORS, IGNORE, LabelSet, get_label_set, palette_array
from semseg_ros.pictures import side_by_side

KITTI_CATEGORY = re.compile(r"^(umm|um|uu)_")


def _nan_to_none(values: NDArray[np.float64], names: Sequence[str]) -> dict[str, float | None]:
    return {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, values, strict=True)}


class Accumulator:
    """Everything measured over a set: the confusion matrix and, for road models, KITTI road counts."""

    def __init__(self, label_set: LabelSet, road_index: int | None):
        self.label_set = label_set
        self.matrix = ConfusionMatrix(label_set.num_classes)
        self.road_index = road_index
        self.road: dict[str, RoadCounts] = {}
        self.images = 0

    def add(self, gt: NDArray[np.uint8], labels: NDArray[np.uint8], road_probability: NDArray[np.uint8] | None, name: str) -> None:
        if gt.shape != labels.shape:
            raise SemsegError(f"{name}: prediction size {labels.shape[::-1]} differs from GT {gt.shape[::-1]}")
        self.matrix.update(torch.from_numpy(gt), torch.from_numpy(labels))
        self.images += 1
        if road_probability is not None and self.road_index is not None:
            match = KITTI_CATEGORY.match(Path(name).name)
            category = match.group(1) if match else "all"
            counts = self.road.setdefault(category, RoadCounts())
            counts.add(road_probability, gt == self.road_index, gt != IGNORE)

    def result(self) -> dict[str, Any]:
        classes = self.label_set.classes
        result: dict[str, Any] = {
            "images": self.images,
            "label_set": self.label_set.name,
            "classes": _nan_to_none(self.matrix.iou(), classes),
            "mIoU": self.matrix.mean_iou(),
            "pixel_accuracy": self.matrix.pixel_accuracy(),
        }
        category_of = self.label_set.category_ids()
        if category_of is not None and self.label_set.name != "categories":
            iou = self.matrix.grouped_iou(category_of)
            result["categories"] = _nan_to_none(iou, list(CATEGORY_COLORS)[: len(iou)])
            result["mIoU_categories"] = float(np.nanmean(iou))
        if self.road:
            total = RoadCounts()
            for counts in self.road.values():
                total = total.merged(counts)
            result["kitti_road"] = {**{c: road_metrics(n) for c, n in sorted(self.road.items())}, "all": road_metrics(total)}
        return result


def evaluate_model(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    tta_scales: Sequence[float] | None = None,
    tta_flip: bool = False,
    dump_dir: Path | None = None,
    dump_count: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the segmenter over every image of `dataset` (no transform) and measure."""
    if len(segmenter.card.classes) != dataset.label_set.num_classes:
        raise SemsegError(
            f"the model predicts {len(segmenter.card.classes)} classes but the dataset's label set '{dataset.label_set.name}' has {dataset.label_set.num_classes}"
        )
    road_index = segmenter.card.road_index
    accumulator = Accumulator(dataset.label_set, road_index)
    palette = palette_array(segmenter.card.colors)
    use_tta = bool(tta_flip or (tta_scales and list(tta_scales) != [1.0]))
    seconds = 0.0
    for index in tqdm(
        range(len(dataset)), desc="eval", unit="image", disable=None if progress else True, leave=False
    ):  # None: off when stderr is no terminal (a log, a pipe)
        image, gt = dataset.load(index)
        start = time.perf_counter()
        if use_tta:
            probs = probabilities(segmenter, image, tta_scales or (1.0,), tta_flip)
            labels = probs.argmax(0).to(torch.uint8).cpu().numpy()
            road = (probs[road_index] * 255).round().to(torch.uint8).cpu().numpy() if road_index is not None else None
        else:
            prediction = segmenter.predict(image, road_probability=road_index is not None)
            labels, road = prediction.labels, prediction.road_probability
        seconds += time.perf_counter() - start
        name = dataset.samples[index].image.name
        accumulator.add(gt, labels, road, name)
        if dump_dir is not None and index < dump_count:
            dump_dir.mkdir(parents=True, exist_ok=True)
            picture = side_by_side(image, gt, labels, palette)
            cv2.imwrite(str(dump_dir / f"{Path(name).stem}_eval.png"), picture[..., ::-1])
    result = accumulator.result()
    result["speed"] = {
        "ms_per_image": 1000 * seconds / max(accumulator.images, 1),
        "fps": accumulator.images / max(seconds, 1e-9),
        "backend": segmenter.backend.name,
    }
    result["tta"] = {"scales": list(tta_scales or [1.0]), "flip": tta_flip} if use_tta else None
    return result


def _prediction_files(pred_dir: Path, suffixes: tuple[str, ...] = (".png",)) -> dict[str, Path]:
    return {p.name: p for p in pred_dir.rglob("*") if p.suffix in suffixes}


def _cityscapes_pairs(pred_dir: Path, gt_dir: Path) -> Iterator[tuple[Path, Path]]:
    """(prediction, GT labelIds) pairs: the prediction is any PNG named <city>_<seq>_<frame>*.png."""
    gts = sorted(gt_dir.rglob("*_gtFine_labelIds.png"))
    if not gts:
        raise SemsegError(f"{gt_dir}: no *_gtFine_labelIds.png files")
    predictions = _prediction_files(pred_dir)
    for gt in gts:
        key = "_".join(gt.name.split("_")[:3])
        matches = [p for n, p in predictions.items() if n.startswith(key + "_") or n == key + ".png"]
        if len(matches) != 1:
            raise SemsegError(f"{len(matches)} predictions in {pred_dir} match {key}*.png (need exactly one)")
        yield matches[0], gt


ID_SPACES = ("auto", "labelid", "trainid")


def evaluate_files(pred_dir: str | Path, gt_dir: str | Path, fmt: str, ids: str = "auto") -> dict[str, Any]:
    """Evaluate prediction files written by any model, like the official evaluators.

    cityscapes: single-channel PNGs (L, P or 16-bit grey, read as the official evaluator reads
    them) vs gtFine labelIds, 19 evaluated classes. `ids` says what the predictions hold: Cityscapes
    label ids (what the official evaluator reads), trainIds 0..18 (`semseg predict`'s default) or
    `auto`: trainIds when no value over the whole set exceeds 18 except 255 (label-id predictions
    of a 19-class model hold 19..33 as soon as any sky, vegetation, person or vehicle is predicted),
    else label ids; `result["ids"]` says which was used and `result["ids_detected"]` whether it was
    detected. kitti-road: road probability PNGs named <cat>_road_<idx>.png vs gt_image_2/<cat>_road_<idx>.png.
    Errors: SemsegError.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    if not pred_dir.is_dir():
        raise SemsegError(f"{pred_dir}: prediction folder not found")
    if ids not in ID_SPACES:
        raise SemsegError(f"--ids {ids}: expected one of {', '.join(ID_SPACES)}")
    if fmt == "cityscapes":
        label_set = get_label_set("cityscapes19")
        as_label_ids, as_train_ids = Accumulator(label_set, None), Accumulator(label_set, None)
        seen = np.zeros(256, bool)
        for pred, gt in _cityscapes_pairs(pred_dir, gt_dir):
            truth, values = label_set.map_cityscapes_ids(read_label_png(gt)), read_label_png(pred)
            seen[np.unique(values)] = True
            if ids in ("auto", "labelid"):
                as_label_ids.add(truth, label_set.map_cityscapes_ids(values), None, gt.name)
            if ids in ("auto", "trainid"):
                as_train_ids.add(truth, values, None, gt.name)
        chosen = ids
        if ids == "auto":
            chosen = "trainid" if not seen[label_set.num_classes : IGNORE].any() else "labelid"
        result = (as_train_ids if chosen == "trainid" else as_label_ids).result()
        result.update(ids=chosen, ids_detected=ids == "auto")
        if ids == "auto" and chosen == "trainid" and as_label_ids.images:
            # values 0..18 are label ids too (road 7, building 11 ...): say when that reading scores higher
            other = as_label_ids.result()["mIoU"]
            if other > result["mIoU"]:
                result["ids_ambiguous"] = {"labelid_mIoU": other}
        return result
    if fmt == "kitti-road":
        label_set = get_label_set("road")
        accumulator = Accumulator(label_set, 1)
        gts = sorted(gt_dir.rglob("*_road_*.png"))
        if not gts:
            raise SemsegError(f"{gt_dir}: no <cat>_road_<idx>.png GT files")
        predictions = _prediction_files(pred_dir)
        for gt_path in gts:
            if gt_path.name not in predictions:
                raise SemsegError(f"no prediction {gt_path.name} in {pred_dir}")
            probability = read_label_png(predictions[gt_path.name])
            accumulator.add(read_road_gt(gt_path), (probability >= 128).astype(np.uint8), probability, gt_path.name)
        return accumulator.result()
    raise SemsegError(f"--format {fmt}: expected cityscapes or kitti-road")


def format_table(result: dict[str, Any]) -> str:
    """A readable summary of `result`."""
    lines = []
    if "ids" in result:
        how = "detected from the values; --ids to force" if result["ids_detected"] else "as given by --ids"
        lines.append(f"predictions read as {'Cityscapes label ids' if result['ids'] == 'labelid' else 'trainIds 0..18'} ({how})")
        if "ids_ambiguous" in result:
            lines.append(
                f"warning: every value also is a Cityscapes label id, and read so the mIoU would be "
                f"{result['ids_ambiguous']['labelid_mIoU']:.4f}: if the files hold label ids, use --ids labelid"
            )
    lines.append(f"{'class':<16}{'IoU':>8}")
    for name, value in result["classes"].items():
        lines.append(f"{name:<16}{'n/a' if value is None else f'{value:.4f}':>8}")
    lines.append(f"{'mIoU':<16}{result['mIoU']:>8.4f}")
    lines.append(f"{'pixel accuracy':<16}{result['pixel_accuracy']:>8.4f}")
    if "categories" in result:
        lines.append("")
        for name, value in result["categories"].items():
            lines.append(f"{name:<16}{'n/a' if value is None else f'{value:.4f}':>8}")
        lines.append(f"{'mIoU categories':<16}{result['mIoU_categories']:>8.4f}")
    if "kitti_road" in result:
        lines.append("")
        lines.append(f"{'category':<10}" + "".join(f"{k:>11}" for k in ("MaxF", "AP", "BestThresh", "PRE", "REC", "FPR", "FNR")))
        for category, metrics in result["kitti_road"].items():
            lines.append(
                f"{category:<10}"
                + "".join(
                    f"{100 * metrics[k]:>10.2f}%" if k != "BestThresh" else f"{metrics[k]:>11.3f}"
                    for k in ("MaxF", "AP", "BestThresh", "PRE", "REC", "FPR", "FNR")
                )
            )
    if result.get("speed"):
        speed = result["speed"]
        lines.append("")
        lines.append(f"speed: {speed['ms_per_image']:.1f} ms per image ({speed['fps']:.1f} FPS, {speed['backend']})")
    if result.get("tta"):
        lines.append(describe_tta(result["tta"]["scales"], result["tta"]["flip"]))
    return "\n".join(lines)


def describe_tta(scales: Sequence[float], flip: bool) -> str:
    """One line naming the test-time augmentation, for the console."""
    flips = " and horizontal flips" if flip else ""
    return (
        f"test-time augmentation: scales {', '.join(f'{s:g}' for s in scales)} (sizes rounded to multiples of 32){flips}, softmax averaged"
    )
