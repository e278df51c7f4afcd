"""Training throughput (images/s) of one optimizer step loop, fp32 vs AMP + channels_last, side by side.

    .venv/bin/python bench/train_throughput.py [--arch fpn --encoder resnext50_32x4d] [--size 512,1024]
        [--batch 2] [--steps 5] [--device cpu|cuda]

AMP is bf16 autocast (CPU and CUDA); channels_last is applied with it. Random data: this measures
the network and optimizer, not the data loader.
"""

from __future__ import annotations

import argparse
import time

import torch

from semseg_ros.models.factory import ModelConfig, build_model
from semseg_ros.train.config import LossConfig
from semseg_ros.train.losses import SegmentationLoss


def measure(arch: str, encoder: str, size: tuple[int, int], batch: int, steps: int, device: torch.device, amp: bool) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, encoder=encoder), 19).to(device).train()
    images = torch.randn(batch, 3, *size, device=device)
    target = torch.randint(0, 19, (batch, *size), device=device)
    if amp:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    loss_fn = SegmentationLoss(LossConfig()).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = model(images, all_outputs=True)
        loss, _ = loss_fn(outputs, target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="fpn")
    parser.add_argument("--encoder", default="resnext50_32x4d")
    parser.add_argument("--size", default="512,1024")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split(","))
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.arch}-{args.encoder} {size[0]}x{size[1]}, batch {args.batch}, {args.steps} steps, {name}")
    fp32 = measure(args.arch, args.encoder, size, args.batch, args.steps, device, amp=False)
    amp = measure(args.arch, args.encoder, size, args.batch, args.steps, device, amp=True)
    print(f"{'mode':<28}{'images/s':>10}")
    print(f"{'fp32':<28}{fp32:10.3f}")
    print(f"{'bf16 AMP + channels_last':<28}{amp:10.3f}")
    print(f"AMP speed-up: {amp / fp32:.2f}x")


if __name__ == "__main__":
    main()
