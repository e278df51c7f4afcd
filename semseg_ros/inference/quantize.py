"""INT8 post-training quantisation of an exported ONNX model, calibrated on real images, and its cache.

ONNX Runtime's static QDQ quantisation (onnxruntime.quantization.quantize_static): int8 weights per
output channel (symmetric), uint8 activations per tensor with MinMax ranges collected over the
calibration images, preprocessed exactly as `Segmenter` does. The QDQ file runs on ONNX Runtime
and OpenVINO alike. It is cached beside the ONNX export, named by the source model's sha256 and a
hash of the calibration images, so a new model or a new calibration set makes a new file.

INT8 is used by default (precision "auto") only where an accuracy record says so: a JSON sidecar
`<int8 file>.json` written by `bench/cpu_runtimes.py accuracy` holding the fp32 and INT8 mIoU per
runtime on a labelled dataset; a runtime qualifies when its INT8 mIoU is within `MAX_MIOU_DROP`
of fp32 (see `verified_runtimes`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from semseg_ros.data.images import read_rgb
from semseg_ros.errors import SemsegError
from semseg_ros.files import atomic_write
from semseg_ros.inference.cache import cache_root
from semseg_ros.inference.preprocess import preprocess_cpu
from semseg_ros.models.card import ModelCard

MAX_MIOU_DROP = 0.01  # INT8 may lose at most 1.0 mIoU point against fp32 to be used by default
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MAX_CALIBRATION_IMAGES = 64


def calibration_images(folder: str | Path, limit: int = MAX_CALIBRATION_IMAGES) -> list[Path]:
    """Image files under `folder` (recursively, sorted), evenly thinned to at most `limit`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SemsegError(f"{folder}: calibration image folder not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SemsegError(f"{folder}: no calibration images (.png/.jpg) in it")
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def calibration_key(files: Sequence[Path]) -> str:
    """sha256 over the calibration images' names and bytes: the cache key of the calibration set."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def int8_path(onnx_path: str | Path, model_sha256: str, calib_key: str, cache_dir: str | Path | None = None) -> Path:
    """Where the INT8 model of `onnx_path` calibrated on the set `calib_key` is cached."""
    return cache_root(cache_dir) / f"{Path(onnx_path).stem}-int8-{model_sha256[:16]}-{calib_key[:12]}.onnx"


def quantize_int8(
    onnx_path: str | Path, out: str | Path, files: Sequence[Path], card: ModelCard, size: tuple[int, int] | None = None
) -> Path:
    """Write `out`, the QDQ INT8 version of the fp32 `onnx_path`, calibrated on `files`; returns it.

    Images are resized to `size` (height, width; default the card's input size) and normalised with
    the card's mean/std, as `Segmenter` does. The model card metadata is carried over, plus
    `semseg_ros.int8` (calibration key and image count).
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    height, width = size or card.input_size
    mean = np.asarray(card.mean, np.float32) * 255.0
    std = np.asarray(card.std, np.float32) * 255.0

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pending = list(files)

        def get_next(self) -> dict[str, NDArray[np.float32]] | None:
            if not self.pending:
                return None
            batch, _ = preprocess_cpu([read_rgb(self.pending.pop(0))], (height, width), mean, std)
            return {"image": batch}

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="semseg_int8_") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        source = onnx.load(str(onnx_path), load_external_data=False)
        model = onnx.load(str(quantized))
        del model.metadata_props[:]
        for prop in source.metadata_props:
            model.metadata_props.add(key=prop.key, value=prop.value)
        model.metadata_props.add(key="semseg_ros.int8", value=json.dumps({"calibration": calibration_key(files), "images": len(files)}))
        atomic_write(out, model.SerializeToString())
    return out


def cached_int8(
    onnx_path: str | Path, calibration: str | Path, cache_dir: str | Path | None = None, size: tuple[int, int] | None = None
) -> Path:
    """The INT8 model of `onnx_path` calibrated on the images under `calibration`, made once and cached."""
    from semseg_ros.inference.backends import onnx_metadata
    from semseg_ros.inference.export import sha256

    card = onnx_metadata(onnx_path)
    files = calibration_images(calibration)
    target = int8_path(onnx_path, card.source_sha256 or sha256(onnx_path), calibration_key(files), cache_dir)
    if not target.is_file():
        try:
            quantize_int8(onnx_path, target, files, card, size)
        except OSError as exc:
            raise SemsegError(
                f"cannot write the INT8 model to {target.parent} ({exc.strerror or exc}); set cache_dir to a writable folder"
            ) from None
    return target


def verified_runtimes(int8_model: str | Path) -> list[str]:
    """Runtimes ("onnxruntime", "openvino") whose measured INT8 mIoU is within MAX_MIOU_DROP of fp32.

    Reads the accuracy record `<int8_model>.json` ({"runtimes": {name: {"fp32": mIoU, "int8": mIoU}}});
    none without a record.
    """
    record = Path(f"{int8_model}.json")
    try:
        runtimes = json.loads(record.read_text())["runtimes"]
        return sorted(name for name, r in runtimes.items() if float(r["int8"]) >= float(r["fp32"]) - MAX_MIOU_DROP)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def find_verified_int8(
    onnx_path: str | Path, cache_dir: str | Path | None = None, size: tuple[int, int] | None = None
) -> tuple[Path, list[str]] | None:
    """The newest cached INT8 model of the same source model (any export, any calibration set) that
    takes input `size` (height, width; None: any) and that some runtime is verified for."""
    from semseg_ros.inference.backends import onnx_metadata
    from semseg_ros.inference.export import sha256

    model_sha = onnx_metadata(onnx_path).source_sha256 or sha256(onnx_path)
    found = sorted(cache_root(cache_dir).glob(f"*-int8-{model_sha[:16]}-*.onnx"), key=os.path.getmtime, reverse=True)
    for path in found:
        runtimes = verified_runtimes(path)
        if runtimes and (size is None or _takes_size(path, size)):
            return path, runtimes
    return None


def _takes_size(path: Path, size: tuple[int, int]) -> bool:
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return all(not d.HasField("dim_value") or d.dim_value == want for d, want in zip(dims[2:], size, strict=True))


def write_accuracy_record(int8_model: str | Path, runtimes: dict[str, dict[str, float]], dataset: str) -> Path:
    """Write the accuracy record that `verified_runtimes` reads."""
    record = Path(f"{int8_model}.json")
    atomic_write(record, json.dumps({"dataset": dataset, "max_miou_drop": MAX_MIOU_DROP, "runtimes": runtimes}, indent=1).encode())
    return record
