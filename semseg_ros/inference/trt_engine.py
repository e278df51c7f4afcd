"""TensorRT 10 engines: build from ONNX, cache with a sidecar, run on torch CUDA tensors.

Imported only when TensorRT is installed (`cache.tensorrt_available()`); type-checked with mypy
against `tensorrt-stubs` everywhere. The engine is cached beside its ONNX file (or in a cache
folder) as `<stem>.<precision>.engine` with `<...>.engine.json`: TensorRT version, GPU name and
compute capability, precision, shapes, ONNX sha256 and the model card. A cached engine is rebuilt
when any of these differ; an unwritable cache is a warning, and the new engine is used from memory.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import tensorrt as trt
import torch

from semseg_ros.data.images import read_rgb
from semseg_ros.errors import SemsegError
from semseg_ros.files import atomic_write
from semseg_ros.inference.backends import onnx_metadata
from semseg_ros.inference.cache import cached_onnx
from semseg_ros.inference.export import sha256
from semseg_ros.models.card import ModelCard

Log = Callable[[str], None]


@dataclass
class Shapes:
    """min/opt/max (batch, height, width) of a dynamic-shape engine."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]


def gpu_identity(device: torch.device) -> dict[str, str]:
    props = torch.cuda.get_device_properties(device)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}"}


def engine_paths(onnx_path: Path, precision: str, cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    folder = Path(cache_dir) if cache_dir else onnx_path.parent
    engine = folder / f"{onnx_path.stem}.{precision}.engine"
    return engine, engine.with_name(engine.name + ".json")


def sidecar_for(onnx_path: Path, precision: str, device: torch.device, shapes: Shapes | None) -> dict[str, Any]:
    return {
        "tensorrt": trt.__version__,
        **gpu_identity(device),
        "precision": precision,
        "shapes": None if shapes is None else {"min": list(shapes.min), "opt": list(shapes.opt), "max": list(shapes.max)},
        "onnx_sha256": sha256(onnx_path),
        "card": onnx_metadata(onnx_path).to_dict(),
    }


def rebuild_reasons(onnx_path: Path, engine_path: Path, precision: str, device: torch.device, shapes: Shapes | None) -> list[str]:
    """Why the engine at `engine_path` must be (re)built from `onnx_path`; empty when it is current.

    Current means: the engine file and its sidecar exist, and the sidecar names this TensorRT version,
    this GPU and compute capability, this precision, these shapes and this ONNX file's hash. The one
    decision `semseg build-engine` and the backend's build-on-first-use both take.
    """
    sidecar_path = engine_path.with_name(engine_path.name + ".json")
    if not engine_path.is_file() or not sidecar_path.is_file():
        return ["no cached engine"]
    try:
        found = json.loads(sidecar_path.read_text())
    except (OSError, ValueError, RecursionError):
        return ["unreadable sidecar"]
    if not isinstance(found, dict):
        return ["unreadable sidecar"]
    expected = sidecar_for(onnx_path, precision, device, shapes)
    keys = ("tensorrt", "gpu", "compute_capability", "precision", "onnx_sha256", "shapes")
    return [f"{k}: cached {found.get(k)!r}, now {expected.get(k)!r}" for k in keys if found.get(k) != expected.get(k)]


class ProgressMonitor(trt.IProgressMonitor):
    """Prints top-level builder phases: engine builds take minutes and should say so."""

    def __init__(self, log: Log):
        trt.IProgressMonitor.__init__(self)
        self.log = log

    def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
        if not parent_phase:
            self.log(f"tensorrt: {phase_name} ({num_steps} steps)")

    def step_complete(self, phase_name: str, step: int) -> bool:
        return True  # never cancel

    def phase_finish(self, phase_name: str) -> None:
        return None


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """INT8 calibration over a folder of images (resized and normalised like the network input)."""

    def __init__(
        self, images: list[Path], size: tuple[int, int], mean: Sequence[float], std: Sequence[float], cache_file: Path, device: torch.device
    ):
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.images, self.size, self.cache_file, self.device = images, size, cache_file, device
        self.mean = torch.tensor(mean, device=device).view(3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(3, 1, 1) * 255
        self.index = 0
        self.batch = torch.empty(0)

    def get_batch_size(self) -> int:
        return 1

    def get_batch(self, names: list[str]) -> list[int]:
        while self.index < len(self.images):
            path = self.images[self.index]
            self.index += 1
            try:
                image = read_rgb(path)  # header size checked before decoding
            except SemsegError:
                continue  # unreadable or oversized: calibrate on the others
            resized = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
            tensor = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).float()
            self.batch = ((tensor - self.mean) / self.std)[None].contiguous()
            return [int(self.batch.data_ptr())]
        return []  # no more batches: calibration ends

    def read_calibration_cache(self) -> bytes:
        return self.cache_file.read_bytes() if self.cache_file.is_file() else b""

    def write_calibration_cache(self, cache: Any) -> None:
        try:
            atomic_write(self.cache_file, bytes(cache))
        except OSError as exc:
            warnings.warn(f"cannot write the INT8 calibration cache {self.cache_file}: {exc.strerror}", stacklevel=1)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path | None = None,
    fp16: bool = False,
    int8: bool = False,
    calib_images: str | Path | None = None,
    workspace_gb: float = 4.0,
    shapes: Shapes | None = None,
    device: torch.device | None = None,
    log: Log = print,
) -> tuple[bytes, dict[str, Any]]:
    """Build a serialized engine and cache it with its sidecar (a warning when the folder is read-only)."""
    onnx_path = Path(onnx_path)
    device = device or torch.device("cuda")
    precision = "int8" if int8 else ("fp16" if fp16 else "fp32")
    sidecar = sidecar_for(onnx_path, precision, device, shapes)  # the request, so that caches compare like with like
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SemsegError(f"{onnx_path}: TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16 or int8:
        config.set_flag(trt.BuilderFlag.FP16)
    image_input = network.get_input(0)
    dims = tuple(image_input.shape)
    if -1 in dims:
        if shapes is None and -1 not in dims[1:]:  # only the batch is dynamic: serve batches of 1 to 8
            shapes = Shapes((1, dims[2], dims[3]), (1, dims[2], dims[3]), (8, dims[2], dims[3]))
        if shapes is None:
            raise SemsegError(f"{onnx_path} has dynamic shapes: give --min-shape/--opt-shape/--max-shape as batch,height,width")
        profile = builder.create_optimization_profile()
        profile.set_shape(
            image_input.name,
            trt.Dims([shapes.min[0], 3, *shapes.min[1:]]),
            trt.Dims([shapes.opt[0], 3, *shapes.opt[1:]]),
            trt.Dims([shapes.max[0], 3, *shapes.max[1:]]),
        )
        config.add_optimization_profile(profile)
    card = onnx_metadata(onnx_path)
    calibrator = None
    if int8:
        if calib_images is None:
            raise SemsegError("--int8 needs --calib-images DIR (a few hundred representative images)")
        images = sorted(p for p in Path(calib_images).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not images:
            raise SemsegError(f"{calib_images}: no .png/.jpg images for INT8 calibration")
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = EntropyCalibrator(images, card.input_size, card.mean, card.std, onnx_path.with_suffix(".int8.calib"), device)
        config.int8_calibrator = calibrator
    timing_path = onnx_path.with_name(f"{onnx_path.stem}.timing.cache")
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    monitor = ProgressMonitor(log)
    config.progress_monitor = monitor
    log(f"tensorrt {trt.__version__}: building a {precision} engine from {onnx_path.name} (minutes; the result is cached)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SemsegError(f"{onnx_path}: TensorRT failed to build the engine (see its messages above)")
    data = bytes(memoryview(serialized))
    target = Path(engine_path) if engine_path else engine_paths(onnx_path, precision)[0]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
        atomic_write(target.with_name(target.name + ".json"), json.dumps(sidecar, indent=2).encode())
        atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    except OSError as exc:
        warnings.warn(
            f"cannot cache the engine at {target} ({exc.strerror}); using it from memory, it is rebuilt at the next start", stacklevel=2
        )
    return data, sidecar


_TORCH_DTYPES = {
    trt.DataType.FLOAT: torch.float32,
    trt.DataType.HALF: torch.float16,
    trt.DataType.INT32: torch.int32,
    trt.DataType.INT64: torch.int64,
    trt.DataType.UINT8: torch.uint8,
    trt.DataType.INT8: torch.int8,
    trt.DataType.BOOL: torch.bool,
}


class TensorRTBackend:
    """One execution context; tensors addressed by name; enqueued on torch's current CUDA stream."""

    name = "tensorrt"

    def __init__(self, engine_data: bytes, device: torch.device):
        if device.type != "cuda":
            raise SemsegError("backend tensorrt needs a CUDA device")
        self.device = device
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        with torch.cuda.device(device):
            engine = self.runtime.deserialize_cuda_engine(engine_data)
        if engine is None:
            raise SemsegError(
                "cannot deserialize the TensorRT engine: built for another GPU or TensorRT version? rebuild it with `semseg build-engine --force`"
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise SemsegError(f"engine has inputs {inputs} and outputs {outputs}; expected one image input and one output")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.dtype = _TORCH_DTYPES[engine.get_tensor_dtype(self.input_name)]
        self.output_dtype = _TORCH_DTYPES[engine.get_tensor_dtype(self.output_name)]

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype).contiguous()
        if not self.context.set_input_shape(self.input_name, tuple(batch.shape)):
            raise SemsegError(f"input shape {tuple(batch.shape)} is outside the engine's optimization profile")
        output = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, batch.data_ptr())
        self.context.set_tensor_address(self.output_name, output.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return output


def load_backend(
    path: Path,
    device: torch.device,
    fp16: bool = False,
    cache_dir: str | Path | None = None,
    input_size: tuple[int, int] | None = None,
    force: bool = False,
) -> tuple[TensorRTBackend, ModelCard]:
    """A backend for a .engine (with sidecar), an .onnx or a .pt (exported, built and cached on first use), and its model card."""
    if path.suffix == ".engine":
        sidecar_path = path.with_name(path.name + ".json")
        if not sidecar_path.is_file():
            raise SemsegError(f"{path}: no sidecar {sidecar_path.name}; rebuild the engine with `semseg build-engine`")
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise SemsegError(
                f"{sidecar_path}: unreadable sidecar ({exc}); rebuild the engine with `semseg build-engine --force`"
            ) from None
        if not isinstance(sidecar, dict):
            raise SemsegError(
                f"{sidecar_path}: not a sidecar (expected a JSON object); rebuild the engine with `semseg build-engine --force`"
            )
        now = {"tensorrt": trt.__version__, **gpu_identity(device)}
        mismatch = {k: f"{sidecar.get(k)} -> {v}" for k, v in now.items() if sidecar.get(k) != v}
        if mismatch:
            raise SemsegError(f"{path} was built for another setup ({mismatch}); rebuild it with `semseg build-engine --force`")
        return TensorRTBackend(path.read_bytes(), device), ModelCard.from_dict(sidecar.get("card"), f"{sidecar_path}: card")
    onnx_path = path if path.suffix == ".onnx" else cached_onnx(path, cache_dir, input_size)
    precision = "fp16" if fp16 else "fp32"
    engine_path, _ = engine_paths(onnx_path, precision, cache_dir)
    reasons = ["--force"] if force else rebuild_reasons(onnx_path, engine_path, precision, device, None)
    if not reasons:
        return TensorRTBackend(engine_path.read_bytes(), device), onnx_metadata(onnx_path)
    print(f"semseg: building a TensorRT engine for {onnx_path.name} ({'; '.join(reasons)})", file=sys.stderr)
    data, sidecar = build_engine(onnx_path, engine_path, fp16=fp16, device=device, log=lambda m: print(m, file=sys.stderr))
    return TensorRTBackend(data, device), ModelCard.from_dict(sidecar["card"])
