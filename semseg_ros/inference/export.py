"""Checkpoint to ONNX, with the model card embedded as metadata and a parity check against PyTorch."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semseg_ros.errors import SemsegError
from semseg_ros.files import atomic_write
from semseg_ros.models.checkpoint import load_checkpoint, model_from_checkpoint

OPSET = 17


class _Logits(nn.Module):
    """The network with `x` as its only argument: the TorchScript exporter passes every default argument of
    the traced forward as a traced input, so SegmentationNet's `all_outputs=False` became a tensor whose
    `if` raised a TracerWarning."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _Argmax(_Logits):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(dim=1).to(torch.uint8)


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Parity:
    max_abs_diff: float  # largest |ONNX - torch| logit; NaN when the graph outputs labels (argmax in the graph)
    label_agreement: float  # fraction of pixels with equal labels


def export_onnx(
    checkpoint: str | Path, onnx_path: str | Path, input_size: tuple[int, int] | None = None, dynamic: bool = False, argmax: bool = False
) -> Path:
    """Write `onnx_path` (atomically) from a checkpoint; returns it."""
    import onnx

    data = load_checkpoint(checkpoint)
    model, card = model_from_checkpoint(data)
    height, width = input_size or card.input_size
    if height % 32 or width % 32:
        raise SemsegError(f"export size {height}x{width}: height and width must be multiples of 32 (the encoder stride)")
    network: nn.Module = _Argmax(model) if argmax else _Logits(model)
    example = torch.zeros(1, 3, height, width)
    # The batch is always dynamic; height and width only with `dynamic` (multiples of 32).
    axes: dict[str, dict[int, str]] = {"image": {0: "batch"}, "output": {0: "batch"}}
    if dynamic:
        axes["image"] |= {2: "height", 3: "width"}
        axes["output"] |= {1 + (0 if argmax else 1): "height", 2 + (0 if argmax else 1): "width"}
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=onnx_path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's own check that a group norm sees more than one value per group (F.group_norm ->
            # _verify_batch_size; smp's FPN) compares traced sizes: a harmless TracerWarning, since exported
            # sizes (multiples of 32) always give many values per group and the check adds nothing to the graph.
            warnings.filterwarnings("ignore", "Converting a tensor to a Python boolean", torch.jit.TracerWarning, r"torch\.nn\.functional")
            torch.onnx.export(
                network.eval(),
                (example,),
                tmp,
                opset_version=OPSET,
                input_names=["image"],
                output_names=["output"],
                dynamic_axes=axes,
                dynamo=False,
            )
        proto = onnx.load(tmp)
        exported = card.replace(input_size=(height, width), argmax_in_graph=argmax, source_sha256=sha256(checkpoint))
        # semseg_ros.argmax and .source_sha256 repeat card fields for readers older than them in the card
        for key, value in (
            ("semseg_ros.card", json.dumps(exported.to_dict())),
            ("semseg_ros.argmax", "true" if argmax else "false"),
            ("semseg_ros.source_sha256", exported.source_sha256),
            ("semseg_ros.dynamic", "true" if dynamic else "false"),
        ):
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, value
        atomic_write(onnx_path, proto.SerializeToString())
    finally:
        Path(tmp).unlink(missing_ok=True)
    return onnx_path


def parity_check(checkpoint: str | Path, onnx_path: str | Path, seed: int = 0) -> Parity:
    """Compare PyTorch and ONNX Runtime on a random image at the exported size."""
    import onnxruntime as ort

    from semseg_ros.inference.backends import onnx_metadata

    model, _ = model_from_checkpoint(checkpoint)
    card = onnx_metadata(onnx_path)
    height, width = card.input_size
    example = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, 3, height, width)).astype(np.float32))
    with torch.no_grad():
        reference = model(example)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"image": example.numpy()})
    expected_labels = reference.argmax(1).numpy()
    if card.argmax_in_graph:
        return Parity(float("nan"), float((output == expected_labels).mean()))
    diff = float(np.abs(output - reference.numpy()).max())
    return Parity(diff, float((output.argmax(1) == expected_labels).mean()))
