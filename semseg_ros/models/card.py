"""The model card: what a model file says about itself, the one definition every format carries.

A checkpoint stores `ModelCard.to_dict()` under "card", an ONNX export stores it as JSON in the
metadata property `semseg_ros.card`, a TensorRT engine's sidecar under "card"; each reads it back
with `ModelCard.from_dict`. Adding a field here adds it to every format. This module imports
neither torch nor the model zoo, so ONNX-only runtimes can read cards cheaply.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from semseg_ros import schema
from semseg_ros.errors import SemsegError
from semseg_ros.labels import LabelSet

MAX_INPUT_SIDE = 8192  # pixels: a network input beyond this is a corrupt card, not a model


@dataclass
class ModelConfig:
    """The `model` section of a training config, and of every model card (encoder_weights is never carried)."""

    arch: Literal["unet", "fpn", "deeplabv3plus", "fcn_resnet50", "deeplabv3_resnet50"] = "fpn"
    encoder: str = "resnext50_32x4d"
    encoder_weights: str | None = None  # a local .pth file, or null for random initialisation
    decoder_res_blocks: int = 0  # unet: residual blocks after each decoder stage (the seed's variant)
    decoder_channels: list[int] | None = None  # unet: channels per decoder stage (smp default when null)
    fpn_channels: list[int] | None = None  # fpn: [pyramid, segmentation] channels (smp default [256, 128])
    aux_head: bool = False  # auxiliary segmentation head on the stride-16 features


@dataclass(frozen=True)
class ModelCard:
    """What inference needs to rebuild and feed the network.

    model: the architecture (encoder_weights always None). label_set: its name (labels.py); classes
    and colors (RGB 0-255) one per class id. mean, std: per-channel normalisation of RGB in 0-1 units,
    applied as (x / 255 - mean) / std. input_size: (height, width) in pixels the network was trained
    (or exported) for. argmax_in_graph: the file outputs (B, H, W) uint8 class ids instead of
    (B, C, H, W) logits (ONNX exports with --argmax). source_sha256: sha256 of the checkpoint an export
    was made from ("" in checkpoints).
    """

    model: ModelConfig
    label_set: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]
    argmax_in_graph: bool = False
    source_sha256: str = field(default="", compare=False)  # provenance: cards of one model compare equal in every format

    @classmethod
    def build(
        cls, model: ModelConfig, label_set: LabelSet, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float]
    ) -> ModelCard:
        """The card of a network trained on `label_set` at `input_size` (height, width)."""
        return cls.from_dict(
            {
                "model": schema.dump(model),
                "label_set": label_set.name,
                "classes": list(label_set.classes),
                "colors": [list(c) for c in label_set.colors],
                "mean": list(mean),
                "std": list(std),
                "input_size": list(input_size),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "model card") -> ModelCard:
        """Strict: an unknown key, a missing required key or a value of the wrong type is a SemsegError naming it.

        Cards written before argmax_in_graph and source_sha256 existed read with their defaults.
        """
        if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):  # the weights file is a training input, never carried
            data = {**data, "model": {**data["model"], "encoder_weights": None}}
        card = schema.load(cls, data, where)
        problem = card.problem()
        if problem:
            raise SemsegError(f"{where}.{problem}")
        return card

    def problem(self) -> str | None:
        """The first value no model can have ("key: why"), or None. Class ids travel as uint8 with 255
        for unknown, so at most 255 classes; normalisation is in 0-1 units; sizes are pixels."""
        if not 1 <= len(self.classes) <= 255:
            return f"classes: {len(self.classes)} classes, expected 1 to 255 (ids are uint8, 255 is unknown)"
        if len(set(self.classes)) != len(self.classes) or not all(name.strip() for name in self.classes):
            return "classes: names must be distinct and non-empty"
        if len(self.colors) != len(self.classes):
            return f"colors: {len(self.colors)} colours for {len(self.classes)} classes"
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in self.colors):
            return "colors: each colour is three integers 0-255 (RGB)"
        if not all(math.isfinite(m) and abs(m) <= 10 for m in self.mean):
            return f"mean: {list(self.mean)}, expected finite per-channel means in 0-1 units"
        if not all(math.isfinite(v) and 1e-4 <= v <= 10 for v in self.std):
            return f"std: {list(self.std)}, expected finite per-channel deviations in 0-1 units (1e-4 to 10)"
        if not all(1 <= v <= MAX_INPUT_SIDE for v in self.input_size):
            return f"input_size: {list(self.input_size)}, expected height and width of 1 to {MAX_INPUT_SIDE} pixels"
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, strings, numbers and bools (JSON and torch.load(weights_only=True) safe)."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)

    @property
    def road_index(self) -> int | None:
        return self.classes.index("road") if "road" in self.classes else None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
