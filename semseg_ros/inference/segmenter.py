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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from semseg_ros.errors import SemsegError
from semseg_ros.inference.backends import Backend, OnnxRuntimeBackend, OpenVinoBackend, TorchBackend, onnx_metadata
from semseg_ros.inference.preprocess import preprocess_cpu, valid_region
from semseg_ros.models.card import ModelCard

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("auto", "fp32", "int8")


@dataclass
class Prediction:
    labels: NDArray[np.uint8]  # (H, W) class ids of the model's label set
    confidence: NDArray[np.uint8] | None = None  # (H, W) max softmax probability * 255
    road_probability: NDArray[np.uint8] | None = None  # (H, W) P(road) * 255 when the label set has road
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


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
        self.selection: dict[str, float] = {}  # backend/precision -> image-to-labels ms, when `from_path` timed candidates
        # Labels-only postprocessing on a CPU, one of UPSAMPLING: bilinear is the reference (evaluation,
        # `semseg predict`); nearest, the fastest, costs 0.4 mIoU point (docs/benchmarks.md), the node's default.
        self.upsampling = "bilinear"
        device = backend.device
        self._mean = torch.tensor(card.mean, device=device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(card.std, device=device).view(1, 3, 1, 1) * 255.0
        self._output_checked = False  # the first inference compares the model's output with its card

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
        precision: str = "auto",
        calibration: str | Path | None = None,
        threads: int = 0,
        cancel: Callable[[], bool] | None = None,
    ) -> Segmenter:
        """Load a checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine) with the chosen backend.

        backend: auto | torch | onnxruntime | openvino | tensorrt. auto picks TensorRT on CUDA when it is
        installed, else torch on CUDA; on a CPU it times ONNX Runtime and OpenVINO (when installed), image
        to labels, and keeps the fastest (`selection` holds the ms measured). A .pt is
        exported once to an ONNX file in `cache_dir` for ONNX Runtime and OpenVINO.
        precision (ONNX Runtime and OpenVINO): fp32 | int8 | auto. int8 runs the QDQ INT8 model
        calibrated on the images under `calibration` (made once, cached; see inference.quantize). auto
        uses a cached INT8 model only for the runtimes its accuracy record verifies (mIoU within 1 point
        of fp32), else fp32; on OpenVINO auto and int8 keep the CPU plugin's default precision for the
        float parts (bf16 where the CPU has it), fp32 forces f32. threads: CPU threads (0: all cores).
        cancel: asked between the CPU candidates' builds and timing runs (seconds each); when it returns
        True, SemsegError "cancelled" (a node told to stop while it chooses its runtime).
        """
        from semseg_ros.inference.cache import cached_onnx, tensorrt_available

        path = Path(path)
        if not path.is_file():
            raise SemsegError(f"{path}: model file not found")
        if precision not in PRECISIONS:
            raise SemsegError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        resolved = resolve_device(device)
        kind = path.suffix.lower()
        if kind not in (".pt", ".pth", ".onnx", ".engine"):
            raise SemsegError(f"{path}: unknown model type '{kind}'; expected a .pt checkpoint, an .onnx model or a .engine")
        if backend not in BACKENDS:
            raise SemsegError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")
        if backend == "auto" and (resolved.type == "cuda" or kind == ".engine"):
            if resolved.type == "cuda":
                backend = "tensorrt" if tensorrt_available() else ("torch" if kind in (".pt", ".pth") else "onnxruntime")
            else:
                backend = "tensorrt"
        if backend == "torch":
            if kind not in (".pt", ".pth"):
                raise SemsegError(f"{path}: backend torch needs a .pt checkpoint (use backend onnxruntime or tensorrt for {kind})")
            from semseg_ros.models.checkpoint import model_from_checkpoint

            model, card = model_from_checkpoint(path)
            if threads:
                torch.set_num_threads(threads)
            return cls(TorchBackend(model, resolved, fp16=fp16, cuda_graphs=cuda_graphs), card, input_size, keep_aspect)
        if backend == "tensorrt":
            if not tensorrt_available():
                fix = "a .pt or .onnx model with backend torch or onnxruntime" if kind == ".engine" else "backend torch or onnxruntime"
                raise SemsegError(
                    f"{path.name}: backend tensorrt: TensorRT is not installed (pip install tensorrt on a machine with an NVIDIA GPU); use {fix}"
                )
            from semseg_ros.inference.trt_engine import load_backend

            trt_backend, card = load_backend(path, resolved, fp16=fp16, cache_dir=cache_dir, input_size=input_size)
            return cls(trt_backend, card, input_size, keep_aspect)
        if kind == ".engine":
            raise SemsegError(f"{path}: a TensorRT engine needs backend tensorrt (or auto)")
        if backend == "openvino" and resolved.type != "cpu":
            raise SemsegError(f"backend openvino runs on the CPU, not {resolved}; use device cpu, or backend torch/tensorrt on CUDA")
        onnx_path = path if kind == ".onnx" else cached_onnx(path, cache_dir, input_size, dynamic=True)
        model_card = onnx_metadata(onnx_path)
        if resolved.type == "cpu":
            candidates = _cpu_candidates(onnx_path, backend, precision, calibration, cache_dir, input_size or model_card.input_size)
        else:  # ONNX Runtime's CUDA provider: the fp32 model as exported
            candidates = [(backend, onnx_path, False)]

        def build(runtime: str, model: Path, int8: bool) -> Backend:
            if runtime == "openvino":
                return OpenVinoBackend(model, resolved, threads=threads, precision="f32" if precision == "fp32" else "")
            return OnnxRuntimeBackend(model, resolved, threads=threads)

        if len(candidates) == 1:
            return cls(build(*candidates[0]), model_card, input_size, keep_aspect)

        def check() -> None:
            if cancel is not None and cancel():
                raise SemsegError(f"{path.name}: loading cancelled")

        built = []
        for candidate in candidates:
            check()
            built.append(cls(build(*candidate), model_card, input_size, keep_aspect))
        timings = _time_predict(built, input_size or model_card.input_size, check=check)
        best = int(np.argmin(timings))
        chosen = built[best]
        chosen.selection = {_variant_name(c[0], c[2], precision): round(t, 2) for c, t in zip(candidates, timings, strict=True)}
        return chosen

    # ------------------------------------------------------------ pipeline
    def _preprocess(self, images: list[NDArray[np.uint8]], size: tuple[int, int] | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Stack, resize (or letterbox) to the network size and normalise; returns the valid (h, w) region."""
        height, width = size or self.input_size
        if self.device.type == "cpu":
            array, valid = preprocess_cpu(images, (height, width), self._mean.view(3).numpy(), self._std.view(3).numpy(), self.keep_aspect)
            return torch.from_numpy(array).to(self.backend.dtype), valid
        batch = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        valid = valid_region(images[0].shape[:2], (height, width), self.keep_aspect)
        if images[0].shape[:2] != valid:
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
            return [Prediction(labels) for labels in _cpu_labels(output[:, :, : valid[0], : valid[1]], size, self.upsampling)]
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
        fused = getattr(self.backend, "infer_labels", None)
        labels_only = not (confidence or road_probability or self.card.argmax_in_graph)
        if (
            fused
            and labels_only
            and self._output_checked
            and self.upsampling in ("bilinear", "nearest")
            and valid == tuple(batch.shape[2:])
        ):
            results = [Prediction(labels) for labels in fused(batch, (int(size[0]), int(size[1])), self.upsampling)]
            timings["infer"], timings["postprocess"] = self._sync_time(start), 0.0  # upsampling and argmax run in the graph
        else:
            output = self._checked(self.backend.infer(batch))
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
        return self._checked(self.backend.infer(batch))[:, :, : valid[0], : valid[1]].float()

    def _checked(self, output: torch.Tensor) -> torch.Tensor:
        """`output` unchanged; a SemsegError when it contradicts the card (a card edited or copied from another model)."""
        if self._output_checked:
            return output
        if self.card.argmax_in_graph and output.ndim != 3:
            raise SemsegError(f"the model card says argmax_in_graph, but the model outputs {tuple(output.shape)} (logits?)")
        if not self.card.argmax_in_graph and (output.ndim != 4 or output.shape[1] != len(self.card.classes)):
            raise SemsegError(
                f"the model outputs {tuple(output.shape)}, its card names {len(self.card.classes)} classes: card and weights disagree"
            )
        self._output_checked = True
        return output

    def warmup(self, size: tuple[int, int] = (375, 1242), runs: int = 2) -> None:
        """Run a few dummy frames so the first real frame does not pay for lazy initialisation."""
        dummy = np.zeros((*size, 3), np.uint8)
        for _ in range(runs):
            self.predict(dummy, confidence=True, road_probability=self.card.road_index is not None)

    def _sync_time(self, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


UPSAMPLING = ("bilinear", "present", "nearest")


def _cpu_labels(logits: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> list[NDArray[np.uint8]]:
    """Labels at `size` (height, width) from (B, C, h, w) logits on a CPU, with OpenCV.

    bilinear: every class's logits upsampled (half-pixel centres), then the argmax: the reference.
    present: the same, for only the classes that win some pixel at network resolution (exact unless
    a class wins a camera pixel without winning any network pixel; cost falls with the class count).
    nearest: argmax at network resolution, then centre-aligned nearest upsampling of the ids.
    """
    results = []
    for item in logits.float().numpy():
        if mode == "bilinear":
            classes = None
        else:
            small = item.argmax(axis=0).astype(np.uint8)
            if mode == "nearest":
                results.append(cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT))
                continue
            classes = np.flatnonzero(np.bincount(small.ravel(), minlength=len(item)))
            if len(classes) == 1:
                results.append(np.full(size, classes[0], np.uint8))
                continue
            item = item[classes]
        channels_last = np.ascontiguousarray(item.transpose(1, 2, 0))
        upsampled = cv2.resize(channels_last, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        if upsampled.ndim == 2:  # a single class
            upsampled = upsampled[..., None]
        labels = upsampled.argmax(axis=-1).astype(np.uint8)
        results.append(labels if classes is None else classes.astype(np.uint8)[labels])
    return results


def _variant_name(runtime: str, int8: bool, precision: str) -> str:
    if int8:
        return f"{runtime} int8"
    return f"{runtime} {'fp32' if runtime == 'onnxruntime' or precision == 'fp32' else 'default precision'}"


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _cpu_candidates(
    onnx_path: Path, backend: str, precision: str, calibration: str | Path | None, cache_dir: str | Path | None, size: tuple[int, int]
) -> list[tuple[str, Path, bool]]:
    """(runtime, ONNX file, is INT8) to choose from for ONNX Runtime / OpenVINO."""
    from semseg_ros.inference import quantize

    runtimes = [backend] if backend != "auto" else ["onnxruntime"] + (["openvino"] if openvino_available() else [])
    if precision == "fp32":
        return [(r, onnx_path, False) for r in runtimes]
    if precision == "int8":
        if calibration is not None:
            int8 = quantize.cached_int8(onnx_path, calibration, cache_dir, size)
        else:
            found = quantize.find_verified_int8(onnx_path, cache_dir, size)
            if found is None:
                raise SemsegError(
                    f"{onnx_path.name}: precision int8 needs calibration images (calibration=DIR) or a verified INT8 model in the cache "
                    "(python bench/cpu_runtimes.py accuracy ...); or use precision fp32"
                )
            int8 = found[0]
        return [(r, int8, True) for r in runtimes]
    found = quantize.find_verified_int8(onnx_path, cache_dir, size)
    verified = [(r, found[0], True) for r in runtimes if found and r in found[1]]
    return verified + [(r, onnx_path, False) for r in runtimes]


def _time_predict(
    segmenters: list[Segmenter], network_size: tuple[int, int], runs: int = 3, check: Callable[[], None] = lambda: None
) -> list[float]:
    """Median ms of each segmenter's labels-only `predict` on a blank image 1.5 times the network size
    (about KITTI's 1242x375 for 256x832), runs interleaved (fair under shared load). End to end, since
    runtimes differ in postprocessing too (OpenVINO fuses upsampling and argmax into its graph)."""
    image = np.zeros((network_size[0] * 3 // 2, network_size[1] * 3 // 2, 3), np.uint8)
    samples: list[list[float]] = [[] for _ in segmenters]
    for segmenter in segmenters:
        check()
        segmenter.predict(image)  # compile / allocate outside the timing
    for _ in range(runs):
        check()
        for segmenter, times in zip(segmenters, samples, strict=True):
            start = time.perf_counter()
            segmenter.predict(image)
            times.append((time.perf_counter() - start) * 1e3)
    return [float(np.median(t)) for t in samples]
