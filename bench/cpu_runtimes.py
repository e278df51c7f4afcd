"""CPU runtimes side by side: torch, ONNX Runtime and OpenVINO, fp32 and INT8; and their accuracy.

    # speed: network only and end to end (1242x375 camera image in, labels out), interleaved runs
    OMP_NUM_THREADS=2 .venv/bin/python bench/cpu_runtimes.py speed --model models/synthetic_unet_mobilenet.pt \\
        --calibration DIR [--student] [--size 256,832] [--runs 20]
    # accuracy: mIoU of every runtime/precision (and postprocessing) on a dataset; writes the INT8
    # accuracy record that lets `precision auto` use INT8 (inference/quantize.py)
    .venv/bin/python bench/cpu_runtimes.py accuracy --model M.pt --config CONFIG.yaml [--set k=v] --calibration DIR

The reference for the ratios is plain OpenVINO: its default settings (bf16 on CPUs that have it),
resize with OpenCV, argmax at network size, nearest upsampling of the ids. The `semseg auto` rows
are what the CLI (bilinear logits) and the node (`upsampling: nearest`) run by default.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from semseg_ros.errors import SemsegError
from semseg_ros.inference import quantize
from semseg_ros.inference.cache import cached_onnx
from semseg_ros.inference.segmenter import UPSAMPLING, Segmenter
from semseg_ros.node_params import SYNTHETIC_MODEL

CAMERA = (375, 1242)


class PlainOpenVino:
    """What a user writes with OpenVINO alone: default settings, OpenCV resize, argmax at network size, nearest upsampling."""

    def __init__(self, onnx_path: Path, card: Any, size: tuple[int, int], threads: int):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(onnx_path))
        model.reshape({0: [1, 3, *size]})
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        self.request = core.compile_model(model, "CPU", config).create_infer_request()
        self.size = size
        self.mean = np.asarray(card.mean, np.float32) * 255
        self.std = np.asarray(card.std, np.float32) * 255

    def network(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch})
        return np.asarray(self.request.get_output_tensor(0).data)

    def input(self, image: np.ndarray) -> np.ndarray:
        resized = cv2.resize(image, (self.size[1], self.size[0])).astype(np.float32)
        return np.ascontiguousarray(((resized - self.mean) / self.std).transpose(2, 0, 1)[None])

    def predict(self, image: np.ndarray) -> np.ndarray:
        labels = self.network(self.input(image))[0].argmax(axis=0).astype(np.uint8)
        return cv2.resize(labels, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


def variants(model: Path, cache: str, calibration: Path | None, size: tuple[int, int], threads: int) -> dict[str, Segmenter]:
    common: dict[str, Any] = {"device": "cpu", "cache_dir": cache, "input_size": size, "threads": threads}
    found = {
        "torch fp32": Segmenter.from_path(model, backend="torch", **common),
        "onnxruntime fp32": Segmenter.from_path(model, backend="onnxruntime", precision="fp32", **common),
        "openvino fp32 (f32 forced)": Segmenter.from_path(model, backend="openvino", precision="fp32", **common),
    }
    if calibration is not None:
        found["onnxruntime int8"] = Segmenter.from_path(model, backend="onnxruntime", precision="int8", calibration=calibration, **common)
        found["openvino int8"] = Segmenter.from_path(model, backend="openvino", precision="int8", calibration=calibration, **common)
    return found


def timed_interleaved(functions: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    for fn in functions.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def speed(args: argparse.Namespace) -> None:
    size = tuple(int(v) for v in args.size.split(","))
    image = cv2.resize(cv2.imread(args.image)[:, :, ::-1], CAMERA[::-1]) if args.image else _street_image()
    print(f"network {size[1]}x{size[0]}, camera image {CAMERA[1]}x{CAMERA[0]}, {args.runs} interleaved runs, {args.threads} threads")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.cache_dir or scratch
        models = [Path(args.model)] + ([_student(Path(scratch), size)] if args.student else [])
        for model in models:
            segs = variants(model, tmp, args.calibration, size, args.threads)
            plain = PlainOpenVino(
                cached_onnx(model, tmp, size, dynamic=True) if model.suffix != ".onnx" else model,
                segs["torch fp32"].card,
                size,
                args.threads,
            )
            auto = Segmenter.from_path(model, device="cpu", cache_dir=tmp, input_size=size, threads=args.threads)
            segs["semseg auto (CLI: bilinear)"] = auto
            node = Segmenter(auto.backend, auto.card, size)
            node.upsampling = "nearest"
            segs["semseg auto, nearest ids (node default)"] = node
            network_input = {name: seg._preprocess([image])[0] for name, seg in segs.items()}
            plain_input = plain.input(image)
            net = timed_interleaved(
                {"plain openvino (default settings)": lambda p=plain, x=plain_input: p.network(x)}
                | {name: (lambda s=seg, x=network_input[name]: s.backend.infer(x)) for name, seg in segs.items()},
                args.runs,
            )
            e2e = timed_interleaved(
                {"plain openvino (default settings)": lambda p=plain: p.predict(image)}
                | {name: (lambda s=seg: s.predict(image)) for name, seg in segs.items()},
                args.runs,
            )
            reference = plain.predict(image)
            base_net, base_e2e = np.median(net["plain openvino (default settings)"]), np.median(e2e["plain openvino (default settings)"])
            print(f"\n{model.name} ({'auto picked ' + auto.backend.name + ' ' + json.dumps(auto.selection)})")
            print("| variant | network p50 ms | vs plain OV | end to end p50 ms | p90 ms | vs plain OV | labels = plain OV |")
            print("|---|---|---|---|---|---|---|")
            for name in net:
                n, e = float(np.median(net[name])), float(np.median(e2e[name]))
                agree = float((segs[name].predict(image).labels == reference).mean()) if name in segs else 1.0
                print(
                    f"| {name} | {n:.1f} | {base_net / n:.2f}x | {e:.1f} | {np.percentile(e2e[name], 90):.1f} | {base_e2e / e:.2f}x | {agree:.4f} |",
                    flush=True,
                )
            timings = {k: round(float(np.median(v)), 2) for k, v in _stage_times(auto, image, args.runs).items()}
            print(f"semseg auto stages (ms p50): {timings}")


def postprocess(args: argparse.Namespace) -> None:
    """Labels at the camera size from the network's logits: each way of upsampling, timed interleaved."""
    from semseg_ros.inference.segmenter import _cpu_labels

    size = tuple(int(v) for v in args.size.split(","))
    image = _street_image()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = cached_onnx(args.model, tmp, size, dynamic=True) if not args.model.endswith(".onnx") else Path(args.model)
        seg = Segmenter.from_path(onnx_path, backend="openvino", input_size=size, threads=args.threads)
        batch, _ = seg._preprocess([image])
        logits = seg.backend.infer(batch)
        functions = {
            "network alone (OpenVINO default)": lambda: seg.backend.infer(batch),
            "network + bilinear upsampling + argmax in the graph": lambda: seg.backend.infer_labels(batch, CAMERA, "bilinear"),
            "network + argmax in the graph, OpenCV nearest": lambda: seg.backend.infer_labels(batch, CAMERA, "nearest"),
        } | {f"OpenCV {mode}": (lambda m=mode: _cpu_labels(logits, CAMERA, m)) for mode in UPSAMPLING}
        functions["torch bilinear + argmax"] = lambda: torch.nn.functional.interpolate(
            logits, size=CAMERA, mode="bilinear", align_corners=False
        ).argmax(1)
        samples = timed_interleaved(functions, args.runs)
    print(f"logits {tuple(logits.shape)} -> labels {CAMERA[1]}x{CAMERA[0]}, {args.runs} interleaved runs, {args.threads} threads")
    print("| step | p50 ms |")
    print("|---|---|")
    for name, values in samples.items():
        print(f"| {name} | {np.median(values):.2f} |")


def _stage_times(segmenter: Segmenter, image: np.ndarray, runs: int) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for _ in range(runs):
        for key, value in segmenter.predict(image).timings.items():
            stages.setdefault(key, []).append(value * 1e3)
    return stages


def _street_image() -> np.ndarray:
    from semseg_ros.synth import writers

    with tempfile.TemporaryDirectory() as tmp:
        drive = writers.write_kitti_raw(Path(tmp), frames=1, seed=0, width=CAMERA[1], height=CAMERA[0], progress=False)
        path = next(drive.rglob("image_02/data/*.png"))
        return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def _student(folder: Path, size: tuple[int, int]) -> Path:
    """The KD student's architecture (FPN-MobileNetV3-Large [64, 32], 19 classes), random weights: speed only."""
    from semseg_ros.labels import get_label_set
    from semseg_ros.models.card import ModelCard
    from semseg_ros.models.checkpoint import save_checkpoint
    from semseg_ros.models.factory import ModelConfig, build_model
    from semseg_ros.train.config import IMAGENET_MEAN, IMAGENET_STD

    config = ModelConfig(arch="fpn", encoder="tu-mobilenetv3_large_100", fpn_channels=[64, 32])
    labels = get_label_set("cityscapes19")
    path = folder / "kd_student_random.pt"
    save_checkpoint(path, build_model(config, labels.num_classes).eval(), ModelCard.build(config, labels, size, IMAGENET_MEAN, IMAGENET_STD))
    return path


def accuracy(args: argparse.Namespace) -> None:
    from semseg_ros.data.datasets import build_dataset
    from semseg_ros.train.config import load_config

    config = load_config(args.config, args.overrides)
    dataset = build_dataset(config.data, args.split)
    size = tuple(int(v) for v in args.size.split(",")) if args.size else None
    common: dict[str, Any] = {"device": "cpu", "cache_dir": args.cache_dir, "input_size": size, "threads": args.threads}
    rows: dict[str, Segmenter] = {
        "onnxruntime fp32": Segmenter.from_path(args.model, backend="onnxruntime", precision="fp32", **common),
        "openvino fp32 (f32 forced)": Segmenter.from_path(args.model, backend="openvino", precision="fp32", **common),
        "openvino default (bf16 here)": Segmenter.from_path(args.model, backend="openvino", **(common | {"precision": "auto"})),
        "onnxruntime int8": Segmenter.from_path(
            args.model, backend="onnxruntime", precision="int8", calibration=args.calibration, **common
        ),
        "openvino int8": Segmenter.from_path(args.model, backend="openvino", precision="int8", calibration=args.calibration, **common),
    }
    if rows["openvino default (bf16 here)"].selection:  # a verified INT8 model exists already: force the float model
        rows["openvino default (bf16 here)"] = _float_openvino(args.model, common)
    results: dict[str, dict[str, Any]] = {}
    print(f"{args.model} on {args.config} {args.split} ({len(dataset)} images), network {size or 'card size'}")
    print("| runtime | upsampling | mIoU | pixel acc | ms/image |")
    print("|---|---|---|---|---|")
    for name, seg in rows.items():
        modes = UPSAMPLING if name in ("onnxruntime fp32", "openvino int8") else ("bilinear",)
        for mode in modes:
            seg.upsampling = mode
            results[f"{name} {mode}"] = result = _evaluate_labels(seg, dataset)
            print(f"| {name} | {mode} | {result['mIoU']:.4f} | {result['pixel_accuracy']:.4f} | {result['ms']:.1f} |", flush=True)
    onnx_path = Path(args.model) if args.model.endswith(".onnx") else cached_onnx(args.model, args.cache_dir, size, dynamic=True)
    int8_model = quantize.cached_int8(onnx_path, args.calibration, args.cache_dir, size)
    fp32 = results["onnxruntime fp32 bilinear"]["mIoU"]
    record = {
        "onnxruntime": {"fp32": fp32, "int8": results["onnxruntime int8 bilinear"]["mIoU"]},
        "openvino": {"fp32": fp32, "int8": results["openvino int8 bilinear"]["mIoU"]},
    }
    path = quantize.write_accuracy_record(int8_model, record, f"{args.config} {args.split} {' '.join(args.overrides)}".strip())
    print(f"accuracy record {path}: INT8 verified for {quantize.verified_runtimes(int8_model) or 'no runtime'}")


def _evaluate_labels(segmenter: Segmenter, dataset: Any) -> dict[str, float]:
    """mIoU and pixel accuracy of the labels-only path (the node's and `semseg predict`'s), confusion matrix over the set."""
    from semseg_ros.eval.metrics import ConfusionMatrix

    matrix = ConfusionMatrix(dataset.label_set.num_classes)
    seconds = 0.0
    for index in range(len(dataset)):
        image, gt = dataset.load(index)
        start = time.perf_counter()
        labels = segmenter.predict(image).labels
        seconds += time.perf_counter() - start
        matrix.update(torch.from_numpy(gt), torch.from_numpy(labels))
    return {"mIoU": matrix.mean_iou(), "pixel_accuracy": matrix.pixel_accuracy(), "ms": 1e3 * seconds / max(len(dataset), 1)}


def _float_openvino(model: str, common: dict[str, Any]) -> Segmenter:
    from semseg_ros.inference.backends import OpenVinoBackend

    seg = Segmenter.from_path(model, backend="openvino", precision="fp32", **common)
    onnx_path = cached_onnx(model, common["cache_dir"], common["input_size"], dynamic=True) if not str(model).endswith(".onnx") else model
    return Segmenter(OpenVinoBackend(onnx_path, seg.device, threads=common["threads"]), seg.card, common["input_size"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "accuracy", "postprocess"):
        p = sub.add_parser(name)
        p.add_argument("--model", default=f"models/{SYNTHETIC_MODEL}", help="checkpoint or ONNX model")
        p.add_argument("--calibration", type=Path, help="folder of calibration images for INT8")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--size", default="" if name == "accuracy" else "256,832", help="network height,width (accuracy: the card's)")
        p.add_argument("--runs", type=int, default=20)
    speed_p, accuracy_p = sub.choices["speed"], sub.choices["accuracy"]
    speed_p.add_argument("--student", action="store_true", help="also the KD student's architecture (random weights)")
    speed_p.add_argument("--image", help="a camera image (default: a synthetic KITTI frame)")
    speed_p.add_argument("--cache-dir", help="model cache holding accuracy records, for the `semseg auto` row (default: a new one)")
    accuracy_p.add_argument("--config", required=True, help="training config YAML naming the dataset")
    accuracy_p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    accuracy_p.add_argument("--split", default="val")
    accuracy_p.add_argument("--cache-dir", default=None, help="model cache (default ~/.cache/semseg_ros, what the node uses)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.command == "accuracy" and args.calibration is None:
        raise SystemExit("accuracy needs --calibration DIR (training images, not the evaluated split)")
    try:
        {"speed": speed, "accuracy": accuracy, "postprocess": postprocess}[args.command](args)
    except SemsegError as exc:
        raise SystemExit(f"cpu_runtimes: error: {exc}") from None


if __name__ == "__main__":
    main()
