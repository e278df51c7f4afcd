"""`Segmenter`: the one inference API the node, the CLI and the evaluators call.

    segmenter = Segmenter.from_path("models/model.pt")          # or .onnx / .engine; backend="auto"
    result = segmenter.predict(image)                             # HxWx3 uint8 RGB, any size
    result.labels, result.confidence, result.road_probability     # HxW at the image's resolution

The model file carries the label set, normalisation and input size, so nothing else is needed.
Preprocessing (resize or letterbox, normalise, HWC to NCHW) and postprocessing (logit upsampling,
softmax, argmax) run on the backend's device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from semseg_ros.errors import SemsegError
from semseg_ros.inference.backends import Backend, OnnxRuntimeBackend, TorchBackend, onnx_metadata


@dataclass
class Prediction:
    labels: NDArray[np.uint8]  # (H, W) class ids of the model's label set
    confidence: NDArray[np.uint8] | None = None  # (H, W) max softmax probability * 255
    road_probability: NDArray[np.uint8] | None = None  # (H, W) P(road) * 255 when the label set has road
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass(frozen=True)
class ModelCard:
    """What the model file says about itself."""

    label_set: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]  # (height, width) the network was trained to see
    argmax_in_graph: bool = False

    @staticmethod
    def from_dict(card: dict[str, Any]) -> ModelCard:
        try:
            return ModelCard(
                label_set=str(card["label_set"]),
                classes=tuple(card["classes"]),
                colors=tuple(tuple(int(v) for v in c) for c in card["colors"]),  # type: ignore[misc]
                mean=tuple(float(v) for v in card["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in card["std"]),  # type: ignore[arg-type]
                input_size=(int(card["input_size"][0]), int(card["input_size"][1])),
                argmax_in_graph=bool(card.get("argmax_in_graph", False)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SemsegError(f"model card is incomplete or malformed ({exc!r}); re-export the model with this version") from None

    @property
    def road_index(self) -> int | None:
        return self.classes.index("road") if "road" in self.classes else None


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SemsegError(f"device '{device}' requested but CUDA is not available; use device auto or cpu")
    return resolved


class Segmenter:
    """A backend plus the model card: image in, labels (and confidence) out, at the image's size."""

    def __init__(self, backend: Backend, card: ModelCard, input_size: tuple[int, int] | None = None, keep_aspect: bool = False):
        self.backend = backend
        self.card = card
        self.input_size = tuple(input_size) if input_size else card.input_size
        self.keep_aspect = keep_aspect
        device = backend.device
        self._mean = torch.tensor(card.mean, device=device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(card.std, device=device).view(1, 3, 1, 1) * 255.0

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        backend: str = "auto",
        device: str | None = None,
        fp16: bool = False,
        input_size: tuple[int, int] | None = None,
        keep_aspect: bool = False,
        cuda_graphs: bool = False,
        cache_dir: str | Path | None = None,
    ) -> Segmenter:
        """Load a checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine) with the chosen backend.

        backend: auto | torch | onnxruntime | tensorrt. auto picks TensorRT on CUDA when it is installed,
        else torch on CUDA, else ONNX Runtime on CPU (faster than torch there; a .pt is exported once to
        an ONNX file in `cache_dir`).
        """
        from semseg_ros.inference.cache import cached_onnx, tensorrt_available

        path = Path(path)
        if not path.is_file():
            raise SemsegError(f"{path}: model file not found")
        resolved = resolve_device(device)
        kind = path.suffix.lower()
        if kind not in (".pt", ".pth", ".onnx", ".engine"):
            raise SemsegError(f"{path}: unknown model type '{kind}'; expected a .pt checkpoint, an .onnx model or a .engine")
        if backend == "auto":
            if resolved.type == "cuda":
                backend = "tensorrt" if tensorrt_available() else ("torch" if kind in (".pt", ".pth") else "onnxruntime")
            else:
                backend = "onnxruntime" if kind != ".engine" else "tensorrt"
        if backend == "torch":
            if kind not in (".pt", ".pth"):
                raise SemsegError(f"{path}: backend torch needs a .pt checkpoint (use backend onnxruntime or tensorrt for {kind})")
            from semseg_ros.models.checkpoint import model_from_checkpoint

            model, card = model_from_checkpoint(path)
            return cls(
                TorchBackend(model, resolved, fp16=fp16, cuda_graphs=cuda_graphs), ModelCard.from_dict(card), input_size, keep_aspect
            )
        if backend == "onnxruntime":
            onnx_path = path if kind == ".onnx" else cached_onnx(path, cache_dir, input_size, dynamic=True)
            return cls(OnnxRuntimeBackend(onnx_path, resolved), ModelCard.from_dict(onnx_metadata(onnx_path)), input_size, keep_aspect)
        if backend == "tensorrt":
            if not tensorrt_available():
                fix = "a .pt or .onnx model with backend torch or onnxruntime" if kind == ".engine" else "backend torch or onnxruntime"
                raise SemsegError(
                    f"{path.name}: backend tensorrt: TensorRT is not installed (pip install tensorrt on a machine with an NVIDIA GPU); use {fix}"
                )
            from semseg_ros.inference.trt_engine import load_backend

            trt_backend, card_dict = load_backend(path, resolved, fp16=fp16, cache_dir=cache_dir, input_size=input_size)
            return cls(trt_backend, ModelCard.from_dict(card_dict), input_size, keep_aspect)
        raise SemsegError(f"backend '{backend}' is not one of auto, torch, onnxruntime, tensorrt")

    # ------------------------------------------------------------ pipeline
    def _preprocess(self, images: list[NDArray[np.uint8]], size: tuple[int, int] | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Stack, resize (or letterbox) to the network size and normalise; returns the valid (h, w) region."""
        height, width = size or self.input_size
        batch = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        source_h, source_w = images[0].shape[:2]
        valid = (height, width)
        if self.keep_aspect:
            scale = min(height / source_h, width / source_w)
            valid = (max(1, round(source_h * scale)), max(1, round(source_w * scale)))
        if (source_h, source_w) != valid:
            batch = F.interpolate(batch, size=valid, mode="bilinear", align_corners=False, antialias=False)
        batch = (batch - self._mean) / self._std
        if valid != (height, width):
            batch = F.pad(batch, (0, width - valid[1], 0, height - valid[0]))
        return batch.to(self.backend.dtype), valid

    def _postprocess(
        self, output: torch.Tensor, valid: tuple[int, int], size: tuple[int, int], confidence: bool, road_probability: bool
    ) -> list[Prediction]:
        if self.card.argmax_in_graph:  # labels already: centre-aligned nearest upsampling of ids
            ids = F.interpolate(output[:, None, : valid[0], : valid[1]].float(), size=size, mode="nearest-exact")
            return [Prediction(labels=label) for label in ids[:, 0].to(torch.uint8).cpu().numpy()]
        road = self.card.road_index if road_probability else None
        if output.device.type == "cpu" and not confidence and road is None:
            return [Prediction(labels) for labels in _cpu_labels(output[:, :, : valid[0], : valid[1]], size)]
        logits = F.interpolate(output[:, :, : valid[0], : valid[1]].float(), size=size, mode="bilinear", align_corners=False)
        conf = road_prob = None
        if confidence or road is not None:
            probabilities = logits.softmax(dim=1)
            best, labels = probabilities.max(dim=1)
            if confidence:
                conf = (best * 255).round().to(torch.uint8).cpu().numpy()
            if road is not None:
                road_prob = (probabilities[:, road] * 255).round().to(torch.uint8).cpu().numpy()
        else:
            labels = logits.argmax(dim=1)
        labels_np = labels.to(torch.uint8).cpu().numpy()
        return [
            Prediction(labels_np[i], None if conf is None else conf[i], None if road_prob is None else road_prob[i])
            for i in range(len(labels_np))
        ]

    def predict(self, image: NDArray[np.uint8], confidence: bool = False, road_probability: bool = False) -> Prediction:
        """Labels (optionally confidence and road probability) for one HxWx3 uint8 RGB image, at its resolution."""
        return self.predict_batch([image], confidence, road_probability)[0]

    def predict_batch(self, images: list[NDArray[np.uint8]], confidence: bool = False, road_probability: bool = False) -> list[Prediction]:
        """Same-size images in one batch (for throughput)."""
        if not images:
            return []
        for image in images:
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
                got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
                raise SemsegError(f"predict needs HxWx3 uint8 RGB images, got {got}")
        size = images[0].shape[:2]
        if any(image.shape[:2] != size for image in images):
            raise SemsegError("predict_batch needs images of one size; call predict per image otherwise")
        timings = {}
        start = time.perf_counter()
        batch, valid = self._preprocess(images)
        timings["preprocess"] = self._sync_time(start)
        start = time.perf_counter()
        output = self.backend.infer(batch)
        timings["infer"] = self._sync_time(start)
        start = time.perf_counter()
        results = self._postprocess(output, valid, (int(size[0]), int(size[1])), confidence, road_probability)
        timings["postprocess"] = self._sync_time(start)
        for result in results:
            result.timings = dict(timings)
        return results

    def logits(self, images: list[NDArray[np.uint8]], size: tuple[int, int] | None = None) -> torch.Tensor:
        """Raw (B, C, h, w) logits at network resolution `size` (default: the model's), for TTA and evaluation."""
        if self.card.argmax_in_graph:
            raise SemsegError("this model outputs labels (exported with --argmax): logits, TTA and probabilities need a logits model")
        batch, valid = self._preprocess(images, size)
        return self.backend.infer(batch)[:, :, : valid[0], : valid[1]].float()

    def warmup(self, size: tuple[int, int] = (375, 1242), runs: int = 2) -> None:
        """Run a few dummy frames so the first real frame does not pay for lazy initialisation."""
        dummy = np.zeros((*size, 3), np.uint8)
        for _ in range(runs):
            self.predict(dummy, confidence=True, road_probability=self.card.road_index is not None)

    def _sync_time(self, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def _cpu_labels(logits: torch.Tensor, size: tuple[int, int]) -> list[NDArray[np.uint8]]:
    """Bilinear logit upsampling and argmax with OpenCV: about twice as fast as torch on a CPU."""
    results = []
    for item in logits.float().numpy():
        channels_last = np.ascontiguousarray(item.transpose(1, 2, 0))
        upsampled = cv2.resize(channels_last, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        if upsampled.ndim == 2:  # a single class
            upsampled = upsampled[..., None]
        results.append(upsampled.argmax(axis=-1).astype(np.uint8))
    return results
