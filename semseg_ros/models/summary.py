"""Model summaries in the seed's terms: parameter count and size, forward/backward activation memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semseg_ros.models.factory import ModelConfig, build_model

BYTES = 4  # float32
MB = 1024**2


@dataclass
class Summary:
    params: int
    params_mb: float
    forward_backward_mb: float  # every leaf module's output, kept for backward and matched by a gradient (x2)
    measured_mb: float | None  # CUDA peak memory of one forward + backward, when a GPU is present


def _leaf_output_elements(model: nn.Module, example: torch.Tensor) -> int:
    total = 0

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        nonlocal total
        outputs = output if isinstance(output, list | tuple) else [output]
        total += sum(o[0].numel() for o in outputs if isinstance(o, torch.Tensor))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return total


def summarize(model_config: ModelConfig, num_classes: int, input_size: tuple[int, int, int]) -> Summary:
    """Summary of the architecture at `input_size` (C, H, W), batch 1. Shapes come from a meta-device pass."""
    with torch.device("meta"):
        model = build_model(model_config, num_classes)
        example = torch.empty((1, *input_size))
    params = sum(p.numel() for p in model.parameters())
    elements = _leaf_output_elements(model.eval(), example)
    measured = None
    if torch.cuda.is_available():
        measured = _measure_cuda(model_config, num_classes, input_size)
    return Summary(params, params * BYTES / MB, 2 * elements * BYTES / MB, measured)


def _measure_cuda(model_config: ModelConfig, num_classes: int, input_size: tuple[int, int, int]) -> float:
    model = build_model(model_config, num_classes).cuda().train()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    model(torch.randn((1, *input_size), device="cuda")).float().mean().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / MB
