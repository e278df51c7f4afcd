"""Inference latency and throughput per backend and model, side by side in one run.

    .venv/bin/python bench/inference.py [--models fpn,unet,student,fast] [--runs 10] [--size 384,1248] [--batch 8]

For each model (random weights: speed does not depend on them) at 1248x384: p50/p99 of
`Segmenter.predict` end to end (pre/post included, 1242x375 camera image in, labels out) and of
the bare network call, plus images/s at batch 8. On CPU: torch vs onnxruntime vs openvino (fp32;
INT8 and the side-by-side against plain OpenVINO: bench/cpu_runtimes.py). On CUDA: torch fp32,
fp16, fp16 + CUDA graphs, torch.compile, and TensorRT fp16 where installed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semseg_ros.inference.cache import tensorrt_available
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.labels import get_label_set
from semseg_ros.models.card import ModelCard
from semseg_ros.models.checkpoint import save_checkpoint
from semseg_ros.models.factory import ModelConfig, build_model
from semseg_ros.train.config import IMAGENET_MEAN, IMAGENET_STD

MODELS = {
    "fpn": ModelConfig(arch="fpn", encoder="resnext50_32x4d"),
    "unet": ModelConfig(arch="unet", encoder="resnext50_32x4d"),
    "student": ModelConfig(arch="unet", encoder="mobilenet_v2", decoder_channels=[128, 64, 48, 32, 16]),
    "fast": ModelConfig(arch="fpn", encoder="tu-mobilenetv3_large_100", fpn_channels=[64, 32]),
}


def make_checkpoint(name: str, folder: Path, size: tuple[int, int]) -> Path:
    labels = get_label_set("cityscapes19")
    config = MODELS[name]
    model = build_model(config, labels.num_classes).eval()
    path = folder / f"{name}.pt"
    save_checkpoint(path, model, ModelCard.build(config, labels, size, IMAGENET_MEAN, IMAGENET_STD))
    return path


def timed(fn, runs: int, sync: bool) -> list[float]:  # type: ignore[no-untyped-def]
    fn()
    fn()
    samples = []
    for _ in range(runs):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def p(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def measure(segmenter: Segmenter, image: np.ndarray, runs: int, batch: int, cuda: bool) -> tuple[list[float], list[float], float]:
    """(predict ms samples, bare network ms samples, median ms of one batch of `batch` images)."""
    end_to_end = timed(lambda: segmenter.predict(image), runs, cuda)
    network_input, _ = segmenter._preprocess([image])
    network = timed(lambda: segmenter.backend.infer(network_input), runs, cuda)
    images = [image] * batch
    return end_to_end, network, statistics.median(timed(lambda: segmenter.predict_batch(images), max(2, runs // 4), cuda))


def variants(cuda: bool) -> list[tuple[str, dict]]:
    if not cuda:
        return [
            ("torch cpu fp32", {"backend": "torch", "device": "cpu"}),
            ("onnxruntime cpu", {"backend": "onnxruntime", "device": "cpu", "precision": "fp32"}),
            ("openvino cpu fp32", {"backend": "openvino", "device": "cpu", "precision": "fp32"}),
        ]
    found = [
        ("torch cuda fp32", {"backend": "torch", "device": "cuda"}),
        ("torch cuda fp16", {"backend": "torch", "device": "cuda", "fp16": True}),
        ("torch cuda fp16 graphs", {"backend": "torch", "device": "cuda", "fp16": True, "cuda_graphs": True}),
    ]
    if tensorrt_available():
        found.append(("tensorrt fp16", {"backend": "tensorrt", "device": "cuda", "fp16": True}))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="fpn,unet,student,fast")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--size", default="384,1248", help="network input height,width")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split(","))
    cuda = args.device.startswith("cuda")
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"network {size[1]}x{size[0]}, camera image 1242x375, {args.runs} runs, {where}")
    print(f"{'model':<9}{'backend':<24}{'predict p50':>12}{'p99':>9}{'network p50':>13}{'p99':>9}{f'batch {args.batch} img/s':>16}")
    image = np.random.default_rng(0).integers(0, 255, (375, 1242, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            checkpoint = make_checkpoint(name, Path(tmp), size)
            for label, options in variants(cuda):
                end_to_end, network, batch_ms = measure(
                    Segmenter.from_path(checkpoint, cache_dir=tmp, **options), image, args.runs, args.batch, cuda
                )
                print(
                    f"{name:<9}{label:<24}{p(end_to_end, 50):10.1f}ms{p(end_to_end, 99):7.1f}ms{p(network, 50):11.1f}ms{p(network, 99):7.1f}ms"
                    f"{args.batch * 1000 / batch_ms:16.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
