"""Sim-to-real, zero-shot: how well do models trained on synthetic images alone segment real CamVid images?

    .venv/bin/python bench/sim_to_real.py MODEL.pt [MODEL.pt ...] [--root data/CamVid] [--split val]

Each model (a Cityscapes-19 checkpoint, e.g. the shipped synthetic model) segments the CamVid images of
`--split` at `--size` (ONNX Runtime, fp32, CPU); its Cityscapes classes are mapped to CamVid's 11 through
the label ids (labels.LabelSet.map_cityscapes_ids: truck and bus count as Car, rider as Bicyclist, ...) and
scored against the CamVid labels (void ignored). The models are scored side by side on the same images, so
that renderer variants (plain against randomised appearance) can be compared before any real image is
seen. Prints one row per model: per-class IoU and mIoU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semseg_ros.data.config import DataConfig  # noqa: E402
from semseg_ros.data.datasets import build_dataset  # noqa: E402
from semseg_ros.errors import SemsegError  # noqa: E402
from semseg_ros.eval.metrics import ConfusionMatrix  # noqa: E402
from semseg_ros.inference.segmenter import Segmenter  # noqa: E402
from semseg_ros.labels import get_label_set  # noqa: E402
from semseg_ros.models.checkpoint import load_checkpoint  # noqa: E402


def zero_shot_iou(model: Path, root: Path, split: str, size: tuple[int, int], cache: Path, limit: int) -> ConfusionMatrix:
    """The confusion matrix of `model`'s predictions, mapped to CamVid classes, over the split's images."""
    camvid = get_label_set("camvid")
    segmenter = Segmenter.from_path(model, backend="onnxruntime", input_size=size, precision="fp32", cache_dir=cache)
    own = get_label_set(segmenter.card.label_set)
    dataset = build_dataset(DataConfig(format="camvid", root=str(root)), split)
    matrix = ConfusionMatrix(camvid.num_classes)
    for index in range(min(len(dataset), limit) if limit else len(dataset)):
        image, truth = dataset.load(index)
        predicted = camvid.map_cityscapes_ids(own.to_cityscapes_ids(segmenter.predict(image).labels))
        matrix.update(torch.from_numpy(truth.astype("int64")), torch.from_numpy(predicted.astype("int64")))
    return matrix


def network_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not HEIGHT,WIDTH (e.g. 352,480)") from None
    if height < 32 or width < 32 or height % 32 or width % 32:
        raise argparse.ArgumentTypeError(f"{height}x{width}: height and width must be multiples of 32, at least 32")
    return height, width


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 0")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="Cityscapes-19 checkpoints (.pt)")
    parser.add_argument("--root", type=Path, default=ROOT / "data" / "CamVid", help="CamVid root, SegNet layout")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--size", type=network_size, default="352,480", help="network input height,width (multiples of 32)")
    parser.add_argument("--limit", type=count, default=0, help="score only the first N images (0: all)")
    args = parser.parse_args()
    size = args.size
    camvid = get_label_set("camvid")
    try:  # everything checked before the first (slow) ONNX export
        build_dataset(DataConfig(format="camvid", root=str(args.root)), args.split)
        for model in args.models:
            label_set = load_checkpoint(model)["card"]["label_set"]
            if label_set != "cityscapes19":
                parser.error(f"{model}: its label set is {label_set}; zero-shot scoring takes Cityscapes-19 models")
    except SemsegError as exc:
        parser.error(str(exc))
    print(f"CamVid {args.split}, zero-shot, network {size[0]}x{size[1]}, Cityscapes classes mapped to CamVid's 11")
    print("| model | " + " | ".join(camvid.classes) + " | mIoU |")
    print("|---" * (camvid.num_classes + 2) + "|")
    with tempfile.TemporaryDirectory() as cache:
        for model in args.models:
            matrix = zero_shot_iou(model, args.root, args.split, size, Path(cache), args.limit)
            cells = " | ".join(f"{v:.3f}" for v in matrix.iou())
            print(f"| {model} | {cells} | **{matrix.mean_iou():.3f}** |", flush=True)


if __name__ == "__main__":
    main()
