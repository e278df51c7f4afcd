"""Inference backends: run a normalised (B, 3, H, W) float batch through the network, return logits.

Every backend takes and returns torch tensors on its `device`, so pre- and postprocessing run
where the network runs (on the GPU for torch CUDA and TensorRT).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from semseg_ros.errors import SemsegError
from semseg_ros.models.card import ModelCard


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype  # the input dtype the network wants

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised input on `device` -> (B, C, H, W) logits on `device`."""
        ...


class TorchBackend:
    """PyTorch eager (CPU or CUDA); on CUDA optionally fp16, channels_last and CUDA-graph replay."""

    name = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        fp16: bool = False,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        compile: bool = False,
    ):
        cuda = device.type == "cuda"
        self.device = device
        self.dtype = torch.float16 if (fp16 and cuda) else torch.float32
        self.channels_last = channels_last and cuda
        model = model.to(device=device, dtype=self.dtype).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model: Any = torch.compile(model, mode="max-autotune-no-cudagraphs") if compile else model
        self.cuda_graphs = cuda_graphs and cuda
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @torch.inference_mode()
    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if not self.cuda_graphs:
            return self.model(batch)
        key = tuple(batch.shape)
        if key not in self._graphs:
            self._graphs[key] = self._capture(batch)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(batch)
        graph.replay()
        return static_out.clone()

    def _capture(self, batch: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = batch.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up outside the graph (cuDNN autotuning, lazy init)
                self.model(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return graph, static_in, static_out


class OnnxRuntimeBackend:
    """ONNX Runtime: CPU, or the CUDA execution provider when that build is installed."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: torch.device, threads: int = 0):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise SemsegError("backend onnxruntime on CUDA needs onnxruntime-gpu; install it or use backend torch/tensorrt")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: pre/postprocessing threads need the cores right after.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise SemsegError(f"{path}: ONNX Runtime cannot load the model ({' '.join(str(exc).split())[:200]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.device = device
        self.dtype = torch.float16 if "float16" in self.session.get_inputs()[0].type else torch.float32

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.to(self.dtype).cpu().numpy()
        try:
            (logits, *_) = self.session.run(None, {self.input_name: np.ascontiguousarray(array)})
        except Exception as exc:
            if "dimensions" in str(exc):
                shape = self.session.get_inputs()[0].shape
                raise SemsegError(
                    f"the ONNX model takes input {shape}, got {list(array.shape)}; export it with --dynamic for other sizes"
                ) from None
            raise
        return torch.from_numpy(np.asarray(logits)).to(self.device)


class OpenVinoBackend:
    """OpenVINO on the CPU, from an ONNX file (fp32 or INT8 QDQ).

    `precision` is the CPU plugin's INFERENCE_PRECISION_HINT: "" keeps the plugin's default (bf16 on
    CPUs with AVX512-BF16 or AMX, f32 elsewhere), "f32" forces fp32. Each input shape is compiled once
    (static shapes run faster than a dynamic model); a fixed-size model refuses other sizes.
    """

    name = "openvino"
    max_shapes = 4  # compiled shapes kept (each holds its own buffers)

    def __init__(self, path: str | Path, device: torch.device, threads: int = 0, precision: str = ""):
        if device.type != "cpu":
            raise SemsegError(f"backend openvino runs on the CPU, not {device}; use device cpu, or backend torch/tensorrt on CUDA")
        try:
            import openvino as ov
        except ImportError:
            raise SemsegError("backend openvino needs the openvino package (pip install openvino); or use backend onnxruntime") from None
        self._ov = ov
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:
            raise SemsegError(f"{path}: OpenVINO cannot read the model ({' '.join(str(exc).split())[:200]})") from None
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        if precision:
            self._config["INFERENCE_PRECISION_HINT"] = precision
        self._shape = self._model.input(0).get_partial_shape()
        self._requests: dict[tuple[int, ...], Any] = {}
        self.device = device
        self.dtype = torch.float16 if self._model.input(0).get_element_type() == ov.Type.f16 else torch.float32

    def _request(self, shape: tuple[int, ...], labels_size: tuple[int, int] | None = None) -> Any:
        key = (*shape, *(labels_size or ()))
        if key not in self._requests:
            if not self._shape.compatible(self._ov.PartialShape(list(shape))):
                raise SemsegError(f"the ONNX model takes input {self._shape}, got {list(shape)}; export it with --dynamic for other sizes")
            model = self._model.clone()
            model.reshape({0: list(shape)})
            if labels_size is not None:
                model = self._with_labels(model, labels_size)
            if len(self._requests) >= self.max_shapes:
                self._requests.pop(next(iter(self._requests)))
            self._requests[key] = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        return self._requests[key]

    @staticmethod
    def _with_labels(model: Any, size: tuple[int, int]) -> Any:
        """The network followed by the argmax over classes as uint8, after bilinear upsampling of the
        logits to `size` (ONNX Resize semantics, half-pixel centres: torch's align_corners=False) unless
        `size` is the network's own."""
        import openvino.opset13 as ops

        result = model.get_results()[0]
        logits = result.input_value(0)
        if tuple(logits.get_shape())[2:] != tuple(size):
            logits = ops.interpolate(
                logits,
                ops.constant(np.array(size, np.int64)),
                mode="linear_onnx",
                shape_calculation_mode="sizes",
                coordinate_transformation_mode="half_pixel",
                axes=ops.constant(np.array([2, 3], np.int64)),
            ).output(0)
        best = ops.topk(logits, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type="i32")
        labels = ops.squeeze(ops.convert(best.output(1), "u8"), ops.constant(np.array([1], np.int64)))
        result.input(0).replace_source_output(labels.output(0))
        model.validate_nodes_and_infer_types()
        return model

    def _run(self, batch: torch.Tensor, labels_size: tuple[int, int] | None = None) -> torch.Tensor:
        array = np.ascontiguousarray(batch.to(self.dtype).cpu().numpy())
        request = self._request(tuple(array.shape), labels_size)
        request.infer({0: array})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        return self._run(batch)

    def infer_labels(self, batch: torch.Tensor, size: tuple[int, int], upsampling: str = "bilinear") -> NDArray[np.uint8]:
        """(B, 3, h, w) input -> (B, H, W) uint8 class ids at `size` = (H, W), the argmax inside the compiled graph.

        bilinear: logits upsampled in the graph, then the argmax (exactly `Segmenter`'s reference
        postprocessing, fused). nearest: argmax at network resolution in the graph, then centre-aligned
        nearest upsampling of the ids with OpenCV. Timings: bench/cpu_runtimes.py postprocess.
        """
        if upsampling == "bilinear":
            return self._run(batch, size).numpy()
        small = self._run(batch, tuple(batch.shape[2:])).numpy()  # type: ignore[arg-type]
        return np.stack([cv2.resize(ids, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT) for ids in small])


def onnx_metadata(path: str | Path) -> ModelCard:
    """The model card embedded in an ONNX file by `semseg export` (metadata property `semseg_ros.card`).

    Exports older than the card's argmax_in_graph and source_sha256 fields hold them only in the
    properties `semseg_ros.argmax` and `semseg_ros.source_sha256`. Errors: SemsegError for an
    unreadable file, no card, or a card that does not fit ModelCard (naming the key)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SemsegError(f"{path}: not a readable ONNX model ({' '.join(str(exc).split())[:200]})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if "semseg_ros.card" not in props:
        raise SemsegError(f"{path}: ONNX model has no semseg_ros metadata; export it with `semseg export`")
    try:
        card = json.loads(props["semseg_ros.card"])
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:  # ValueError: a 5000-digit number; RecursionError: 100k brackets
        raise SemsegError(f"{path}: semseg_ros.card metadata is not JSON ({exc}); re-export the model with `semseg export`") from None
    if isinstance(card, dict):
        card.setdefault("argmax_in_graph", props.get("semseg_ros.argmax") == "true")
        card.setdefault("source_sha256", props.get("semseg_ros.source_sha256", ""))
    return ModelCard.from_dict(card, f"{path}: semseg_ros.card")
