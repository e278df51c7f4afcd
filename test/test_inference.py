"""Segmenter API over the torch and ONNX Runtime backends, ONNX export, and TensorRT where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semseg_ros.cli import main
from semseg_ros.errors import SemsegError
from semseg_ros.inference.backends import onnx_metadata
from semseg_ros.inference.cache import tensorrt_available
from semseg_ros.inference.export import export_onnx, parity_check
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.models.checkpoint import model_from_checkpoint


def image(height: int = 75, width: int = 250, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    return np.clip(base + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def test_torch_backend_matches_a_manual_forward_pass(tiny_checkpoint: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch", device="cpu")
    picture = image()
    result = segmenter.predict(picture, confidence=True, road_probability=True)
    assert result.labels.shape == (75, 250) and result.labels.dtype == np.uint8
    assert result.confidence is not None and result.confidence.shape == (75, 250)
    assert result.road_probability is not None and set(result.timings) == {"preprocess", "infer", "postprocess"}
    model, card = model_from_checkpoint(tiny_checkpoint)
    x = torch.from_numpy(picture).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=tuple(card["input_size"]), mode="bilinear", align_corners=False)
    x = (x / 255 - torch.tensor(card["mean"]).view(1, 3, 1, 1)) / torch.tensor(card["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = F.interpolate(model(x), size=(75, 250), mode="bilinear", align_corners=False)
    expected = logits.argmax(1)[0].numpy()
    assert (result.labels == expected).mean() > 0.999
    assert len(np.unique(result.labels)) > 1  # a real, input-dependent output


def test_onnx_export_parity_and_onnxruntime_backend(tiny_checkpoint: Path, tmp_path: Path) -> None:
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    card = onnx_metadata(onnx_path)
    assert card["input_size"] == [64, 192] and card["classes"][0] == "road" and len(card["source_sha256"]) == 64
    parity = parity_check(tiny_checkpoint, onnx_path)
    assert parity.label_agreement >= 0.999 and parity.max_abs_diff < 1e-3
    torch_seg = Segmenter.from_path(tiny_checkpoint, backend="torch", device="cpu")
    onnx_seg = Segmenter.from_path(onnx_path, backend="onnxruntime", device="cpu")
    assert onnx_seg.backend.name == "onnxruntime"
    for seed in range(3):
        picture = image(seed=seed)
        assert (torch_seg.predict(picture).labels == onnx_seg.predict(picture).labels).mean() > 0.999


def test_auto_backend_on_cpu_exports_a_checkpoint_once(tiny_checkpoint: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="auto", device="cpu", cache_dir=tmp_path)
    assert segmenter.backend.name == "onnxruntime"
    cached = list(tmp_path.glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    Segmenter.from_path(tiny_checkpoint, backend="auto", device="cpu", cache_dir=tmp_path)
    assert cached[0].stat().st_mtime_ns == stamp


def test_argmax_and_dynamic_exports(tiny_checkpoint: Path, tmp_path: Path) -> None:
    reference = Segmenter.from_path(tiny_checkpoint, backend="torch", device="cpu")
    argmax = Segmenter.from_path(export_onnx(tiny_checkpoint, tmp_path / "argmax.onnx", argmax=True), backend="onnxruntime")
    assert argmax.card.argmax_in_graph
    at_network_size = image(64, 192)  # no upsampling: in-graph argmax must match exactly
    assert (argmax.predict(at_network_size).labels == reference.predict(at_network_size).labels).mean() > 0.999
    assert argmax.predict(image(128, 384)).labels.shape == (128, 384)
    picture = image(64 * 2, 192 * 2)
    dynamic_path = export_onnx(tiny_checkpoint, tmp_path / "dynamic.onnx", dynamic=True)
    for size in [(64, 192), (96, 320)]:
        seg = Segmenter.from_path(dynamic_path, backend="onnxruntime", input_size=size)
        ref = Segmenter.from_path(tiny_checkpoint, backend="torch", input_size=size)
        assert (seg.predict(picture).labels == ref.predict(picture).labels).mean() > 0.999


def test_batch_and_letterbox(tiny_checkpoint: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    pictures = [image(seed=s) for s in range(3)]
    batch = segmenter.predict_batch(pictures)
    for picture, result in zip(pictures, batch, strict=True):
        assert np.array_equal(result.labels, segmenter.predict(picture).labels)
    letterbox = Segmenter.from_path(tiny_checkpoint, backend="torch", keep_aspect=True)
    assert letterbox.predict(image(200, 100)).labels.shape == (200, 100)


def test_clear_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, backend="torch")
    for bad in (
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((5, 5, 4), np.uint8),
    ):
        with pytest.raises(SemsegError, match="HxWx3 uint8"):
            segmenter.predict(bad)
    with pytest.raises(SemsegError, match="model file not found"):
        Segmenter.from_path(tmp_path / "missing.pt")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(SemsegError, match="unknown model type"):
        Segmenter.from_path(tmp_path / "model.bin")
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(SemsegError, match=r"ONNX Runtime cannot load the model .*Protobuf parsing failed"):
        Segmenter.from_path(tmp_path / "broken.onnx", backend="onnxruntime")
    with pytest.raises(SemsegError, match=r"backend torch needs a \.pt"):
        Segmenter.from_path(tmp_path / "broken.onnx", backend="torch")
    if not tensorrt_available():
        with pytest.raises(SemsegError, match="TensorRT is not installed"):
            Segmenter.from_path(tiny_checkpoint, backend="tensorrt")


def test_export_cli(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["export", "--checkpoint", str(tiny_checkpoint), "--onnx", str(tmp_path / "m.onnx"), "--height", "96", "--width", "320"]) == 0
    )
    assert "labels agree on" in capsys.readouterr().out
    assert onnx_metadata(tmp_path / "m.onnx")["input_size"] == [96, 320]
    assert (
        main(["export", "--checkpoint", str(tiny_checkpoint), "--onnx", str(tmp_path / "x.onnx"), "--height", "100", "--width", "320"]) == 2
    )
    assert "multiples of 32" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert main(["export", "--checkpoint", str(tmp_path / "bad.pt"), "--onnx", str(tmp_path / "y.onnx")]) == 2
    assert "not a readable semseg_ros checkpoint" in capsys.readouterr().err


needs_tensorrt = pytest.mark.skipif(
    not (tensorrt_available() and torch.cuda.is_available()),
    reason="TensorRT and a CUDA GPU are not available here (pip install tensorrt on a GPU machine)",
)


@needs_tensorrt
def test_tensorrt_fp16_engine_agrees_with_pytorch(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from semseg_ros.inference import trt_engine

    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    engine_path = tmp_path / "tiny.fp16.engine"
    trt_engine.build_engine(onnx_path, engine_path, fp16=True)
    assert engine_path.with_name(engine_path.name + ".json").is_file()
    engine = Segmenter.from_path(engine_path, backend="tensorrt", device="cuda")
    reference = Segmenter.from_path(tiny_checkpoint, backend="torch", device="cuda")
    picture = image()
    assert (engine.predict(picture).labels == reference.predict(picture).labels).mean() >= 0.995
    # The cache: a second load of the ONNX reuses the engine; a changed precision rebuilds.
    backend, _ = trt_engine.load_backend(onnx_path, torch.device("cuda"), fp16=True, cache_dir=tmp_path)
    assert backend.name == "tensorrt"
    assert not trt_engine.stale_reasons(
        engine_path.with_name(engine_path.name + ".json"), trt_engine.sidecar_for(onnx_path, "fp16", torch.device("cuda"), None)
    )


@needs_tensorrt
def test_tensorrt_read_only_cache_warns_and_runs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from semseg_ros.inference import trt_engine

    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.warns(UserWarning, match="cannot cache the engine"):
            backend, _ = trt_engine.load_backend(onnx_path, torch.device("cuda"), cache_dir=locked)
        assert backend.infer(torch.zeros(1, 3, 64, 192, device="cuda")).shape == (1, 19, 64, 192)
    finally:
        locked.chmod(0o700)
