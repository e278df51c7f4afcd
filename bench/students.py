"""Student candidates for a CPU: network latency at 1248x384 through ONNX Runtime, side by side.

    .venv/bin/python bench/students.py [--runs 8] [--threads 2]

Random weights (speed does not depend on them), batch 1, the network alone (no pre/post); the
pick goes to bench/inference.py for end-to-end numbers. Candidates: the shipped UNet-MobileNetV2,
a slimmer UNet decoder, FPN on MobileNetV2 / MobileNetV3 (timm) with smp's default and slim widths.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import onnxruntime as ort
import torch

from semseg_ros.models.factory import ModelConfig, build_model

CANDIDATES = {
    "unet mobilenet_v2 [128..16] (shipped)": ModelConfig(arch="unet", encoder="mobilenet_v2", decoder_channels=[128, 64, 48, 32, 16]),
    "unet mobilenet_v2 [96..16]": ModelConfig(arch="unet", encoder="mobilenet_v2", decoder_channels=[96, 48, 32, 24, 16]),
    "unet mobilenetv3_large [128..16]": ModelConfig(
        arch="unet", encoder="tu-mobilenetv3_large_100", decoder_channels=[128, 64, 48, 32, 16]
    ),
    "fpn mobilenet_v2 [256, 128]": ModelConfig(arch="fpn", encoder="mobilenet_v2"),
    "fpn mobilenet_v2 [64, 32]": ModelConfig(arch="fpn", encoder="mobilenet_v2", fpn_channels=[64, 32]),
    "fpn mobilenetv3_large [256, 128]": ModelConfig(arch="fpn", encoder="tu-mobilenetv3_large_100"),
    "fpn mobilenetv3_large [64, 32] (student)": ModelConfig(arch="fpn", encoder="tu-mobilenetv3_large_100", fpn_channels=[64, 32]),
    "fpn mobilenetv3_small [64, 32]": ModelConfig(arch="fpn", encoder="tu-mobilenetv3_small_100", fpn_channels=[64, 32]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    x = torch.randn(1, 3, 384, 1248)
    print(f"{'candidate':<42}{'params':>9}{'ORT p50':>10}{'min':>8}")
    for name, config in CANDIDATES.items():
        model = build_model(config, 19).eval()
        buffer = io.BytesIO()
        torch.onnx.export(model, (x,), buffer, opset_version=17, dynamo=False, input_names=["image"], output_names=["logits"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        for _ in range(2):
            session.run(None, feed)
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run(None, feed)
            samples.append((time.perf_counter() - start) * 1e3)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:<42}{params:>8.2f}M{statistics.median(samples):>8.1f}ms{min(samples):>6.1f}ms", flush=True)


if __name__ == "__main__":
    main()
