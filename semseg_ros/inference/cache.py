"""Model-file caches: the ONNX export of a checkpoint, and where cached engines live."""

from __future__ import annotations

import importlib
import os
import tempfile
import warnings
from pathlib import Path


def tensorrt_available() -> bool:
    """True when the real TensorRT Python module is installed (type stubs alone do not count)."""
    try:
        module = importlib.import_module("tensorrt")
    except ImportError:
        return False
    return hasattr(module, "Builder")


def cache_root(cache_dir: str | Path | None) -> Path:
    """`cache_dir`, else $SEMSEG_CACHE_DIR, else $XDG_CACHE_HOME/semseg_ros (~/.cache/semseg_ros)."""
    if cache_dir:
        return Path(cache_dir)
    base = os.environ.get("SEMSEG_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "semseg_ros")
    return Path(base)


def cached_onnx(
    checkpoint: str | Path, cache_dir: str | Path | None = None, input_size: tuple[int, int] | None = None, dynamic: bool = False
) -> Path:
    """The ONNX export of a checkpoint, made once and cached by the checkpoint's sha256, size and shape mode.

    `dynamic` exports any height and width (multiples of 32), e.g. for multi-scale TTA on ONNX Runtime.
    """
    from semseg_ros.inference.export import export_onnx, sha256

    checkpoint = Path(checkpoint)
    size = f"{input_size[0]}x{input_size[1]}" if input_size else "card"
    target = cache_root(cache_dir) / f"{checkpoint.stem}-{sha256(checkpoint)[:16]}-{size}{'-dynamic' if dynamic else ''}.onnx"
    if not target.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(checkpoint, target, input_size, dynamic=dynamic)
        except OSError as exc:  # read-only, not a folder, disk full: export elsewhere and carry on
            fallback = Path(tempfile.mkdtemp(prefix="semseg_onnx_")) / target.name
            warnings.warn(f"cannot write the ONNX cache in {target.parent} ({exc.strerror or exc}); using {fallback}", stacklevel=2)
            export_onnx(checkpoint, fallback, input_size, dynamic=dynamic)
            return fallback
    return target
