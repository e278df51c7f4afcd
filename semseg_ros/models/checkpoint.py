"""Checkpoints that carry everything inference needs, written atomically, read without pickle.

A checkpoint is a dict saved by torch.save and read with `weights_only=True`:
    format: "semseg_ros.checkpoint/1"
    model_state: the SegmentationNet state dict
    card: ModelCard.to_dict() (models/card.py)
    config: the resolved training config (optional), train_state: optimizer etc. (optional)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from semseg_ros.errors import SemsegError
from semseg_ros.files import atomic_writer
from semseg_ros.models.card import ModelCard
from semseg_ros.models.factory import SegmentationNet, build_model

FORMAT = "semseg_ros.checkpoint/1"


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save through files.atomic_writer: the old file or the new one, never half."""
    with atomic_writer(path) as handle:
        torch.save(obj, handle)


def save_checkpoint(path: str | Path, model: torch.nn.Module, card: ModelCard, **extra: Any) -> None:
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    atomic_save({"format": FORMAT, "model_state": state, "card": card.to_dict(), **extra}, path)


def trained_on_val(data: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint's network has trained on its dataset's val split (`data.train_splits`
    held val at some epoch of its run), so that val figures of it are figures on trained-on images."""
    state = data.get("train_state") or {}
    splits = ((data.get("config") or {}).get("data") or {}).get("train_splits") or []
    return bool(state.get("val_trained", False)) or "val" in splits


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (no arbitrary pickle); clear errors for missing, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise SemsegError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SemsegError(f"{path}: not a readable semseg_ros checkpoint (truncated, corrupt or unsafe pickle: {reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SemsegError(f"{path}: not a semseg_ros checkpoint (no '{FORMAT}' format tag); train one with `semseg train`")
    return data


def model_from_checkpoint(
    source: str | Path | dict[str, Any], map_location: str | torch.device = "cpu"
) -> tuple[SegmentationNet, ModelCard]:
    """Rebuild the network from a checkpoint alone; returns (model in eval mode, card).

    Errors: SemsegError for an unreadable file, a card that does not fit ModelCard (naming the key)
    or weights that do not fit the card's architecture."""
    data = source if isinstance(source, dict) else load_checkpoint(source, map_location)
    card = ModelCard.from_dict(data.get("card"), "checkpoint card")
    model = build_model(card.model, len(card.classes))
    try:
        model.load_state_dict(data["model_state"])
    except RuntimeError as exc:  # torch lists every mismatch on its own line after a heading: name the first
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        first = details[0] if details else str(exc).strip()
        more = f" and {len(details) - 1} more" if len(details) > 1 else ""
        raise SemsegError(
            f"checkpoint weights do not fit its card ({len(card.classes)} classes, {card.model.arch}): {first}{more}"
        ) from None
    return model.eval(), card


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def pack_checkpoint(source: str | Path, target: str | Path, half: bool = False) -> Path:
    """An inference-only copy: model card and weights (fp16 when `half`), no optimizer or training state."""
    data = load_checkpoint(source)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in data["model_state"].items()}
    atomic_save(
        {
            "format": FORMAT,
            "model_state": state,
            "card": ModelCard.from_dict(data.get("card"), f"{source}: card").to_dict(),
            "config": data.get("config"),
            "metrics": data.get("metrics"),
        },
        target,
    )
    return Path(target)
