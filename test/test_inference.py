"""Segmenter API over the torch and ONNX Runtime backends, ONNX export, and TensorRT where installed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from semseg_ros.cli import main
from semseg_ros.errors import SemsegError
from semseg_ros.inference import quantize
from semseg_ros.inference.backends import OpenVinoBackend, onnx_metadata
from semseg_ros.inference.cache import tensorrt_available
from semseg_ros.inference.export import export_onnx, parity_check, sha256
from semseg_ros.inference.preprocess import preprocess_cpu
from semseg_ros.inference.segmenter import UPSAMPLING, Segmenter, _cpu_labels
from semseg_ros.models.checkpoint import model_from_checkpoint
from semseg_ros.node_params import SYNTHETIC_MODEL

INT8_AGREEMENT = 0.99  # shipped model, INT8 vs fp32 labels on the fixture val images: measured 0.997 (both runtimes)


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
    x = F.interpolate(x, size=card.input_size, mode="bilinear", align_corners=False)
    x = (x / 255 - torch.tensor(card.mean).view(1, 3, 1, 1)) / torch.tensor(card.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = F.interpolate(model(x), size=(75, 250), mode="bilinear", align_corners=False)
    expected = logits.argmax(1)[0].numpy()
    assert (result.labels == expected).mean() > 0.999
    assert (segmenter.predict(picture).labels == expected).mean() > 0.999  # labels only: OpenCV, same result
    assert len(np.unique(result.labels)) > 1  # a real, input-dependent output


def test_onnx_export_parity_and_onnxruntime_backend(tiny_checkpoint: Path, tmp_path: Path) -> None:
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    card = onnx_metadata(onnx_path)
    assert card.input_size == (64, 192) and card.classes[0] == "road" and len(card.source_sha256) == 64
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
    assert segmenter.backend.name in ("onnxruntime", "openvino")
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
    for backend in ("onnxruntime", "openvino", "auto"):
        with pytest.raises(SemsegError, match=r"broken.onnx: not a readable ONNX model \(Error parsing message"):
            Segmenter.from_path(tmp_path / "broken.onnx", backend=backend, device="cpu")
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
    assert onnx_metadata(tmp_path / "m.onnx").input_size == (96, 320)
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
    assert not trt_engine.rebuild_reasons(onnx_path, engine_path, "fp16", torch.device("cuda"), None)
    assert trt_engine.rebuild_reasons(onnx_path, engine_path, "fp32", torch.device("cuda"), None)  # another precision: rebuild


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


# ------------------------------------------------------------ CPU runtimes: OpenVINO, INT8, postprocessing


def test_openvino_backend_agrees_with_torch(tiny_checkpoint: Path, tmp_path: Path) -> None:
    torch_seg = Segmenter.from_path(tiny_checkpoint, backend="torch", device="cpu")
    from_checkpoint = Segmenter.from_path(tiny_checkpoint, backend="openvino", precision="fp32", cache_dir=tmp_path)
    fixed = Segmenter.from_path(export_onnx(tiny_checkpoint, tmp_path / "fixed.onnx"), backend="openvino", precision="fp32")
    assert from_checkpoint.backend.name == fixed.backend.name == "openvino"
    assert from_checkpoint.card == fixed.card == torch_seg.card  # the model card travels through the ONNX file
    for seed in range(3):
        picture = image(seed=seed)
        expected = torch_seg.predict(picture).labels
        assert (from_checkpoint.predict(picture).labels == expected).mean() >= 0.999
        assert (fixed.predict(picture).labels == expected).mean() >= 0.999
    dynamic_path = export_onnx(tiny_checkpoint, tmp_path / "dynamic.onnx", dynamic=True)
    for size in [(64, 192), (96, 320)]:
        seg = Segmenter.from_path(dynamic_path, backend="openvino", precision="fp32", input_size=size)
        ref = Segmenter.from_path(tiny_checkpoint, backend="torch", input_size=size)
        assert (seg.predict(image(seed=4)).labels == ref.predict(image(seed=4)).labels).mean() >= 0.999
    # Labels computed inside the compiled graph agree with the host-side postprocessing of the same logits.
    batch, _ = from_checkpoint._preprocess([image(seed=5)])
    logits = from_checkpoint.backend.infer(batch)
    backend = from_checkpoint.backend
    assert isinstance(backend, OpenVinoBackend)
    for mode in ("bilinear", "nearest"):
        fused = backend.infer_labels(batch, (75, 250), mode)
        assert fused.shape == (1, 75, 250) and fused.dtype == np.uint8
        assert (fused[0] == _cpu_labels(logits, (75, 250), mode)[0]).mean() >= 0.999
        from_checkpoint.upsampling = mode
        result = from_checkpoint.predict(image(seed=5))
        assert np.array_equal(result.labels, fused[0]) and result.timings["postprocess"] == 0.0
    other_size = Segmenter.from_path(tmp_path / "fixed.onnx", backend="openvino", precision="fp32", input_size=(96, 320))
    with pytest.raises(SemsegError, match=r"takes input \[\?,3,64,192\].*export it with --dynamic"):
        other_size.predict(image())
    with pytest.raises(SemsegError, match="backend openvino runs on the CPU"):
        OpenVinoBackend(dynamic_path, torch.device("cuda"))


def test_auto_backend_on_cpu_picks_the_fastest_runtime_measured(tiny_checkpoint: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_path(tiny_checkpoint, device="cpu", cache_dir=tmp_path)
    assert set(segmenter.selection) == {"onnxruntime fp32", "openvino default precision"}
    fastest = min(segmenter.selection, key=segmenter.selection.__getitem__)
    assert fastest.startswith(segmenter.backend.name + " ")
    forced = Segmenter.from_path(tiny_checkpoint, backend="onnxruntime", device="cpu", cache_dir=tmp_path)
    assert forced.backend.name == "onnxruntime" and forced.selection == {}  # nothing to choose from: no timing
    # a node told to stop while it times the runtimes stops at the next step (before: only once all were timed)
    for stop_at in (1, 3):
        asked: list[int] = []
        with pytest.raises(SemsegError, match="loading cancelled"):
            Segmenter.from_path(tiny_checkpoint, device="cpu", cache_dir=tmp_path, cancel=lambda: asked.append(1) or len(asked) >= stop_at)  # noqa: B023
        assert len(asked) == stop_at


def test_int8_is_calibrated_cached_and_used_by_default_only_when_verified(
    tiny_checkpoint: Path, cityscapes_root: Path, tmp_path: Path
) -> None:
    calibration = cityscapes_root / "leftImg8bit" / "train"
    cache = tmp_path / "cache"
    auto = Segmenter.from_path(tiny_checkpoint, device="cpu", cache_dir=cache)
    assert not any("int8" in k for k in auto.selection)  # nothing verified: fp32 only
    with pytest.raises(SemsegError, match="precision int8 needs calibration images"):
        Segmenter.from_path(tiny_checkpoint, device="cpu", cache_dir=cache, precision="int8")
    int8 = Segmenter.from_path(tiny_checkpoint, backend="onnxruntime", precision="int8", calibration=calibration, cache_dir=cache)
    (int8_file,) = cache.glob("*-int8-*.onnx")
    sha = onnx_metadata(int8_file).source_sha256
    assert sha == sha256(tiny_checkpoint) and f"-int8-{sha[:16]}-" in int8_file.name
    assert "QuantizeLinear" in {node.op_type for node in __import__("onnx").load(str(int8_file)).graph.node}
    stamp = int8_file.stat().st_mtime_ns
    again = Segmenter.from_path(tiny_checkpoint, backend="openvino", precision="int8", calibration=calibration, cache_dir=cache)
    assert int8_file.stat().st_mtime_ns == stamp  # cached: not quantised again
    picture = image()
    agreement = (int8.predict(picture).labels == again.predict(picture).labels).mean()
    assert agreement > 0.9  # the same INT8 model on two runtimes
    subset = tmp_path / "subset"
    subset.mkdir()
    first = sorted(calibration.rglob("*.png"))[0]
    (subset / first.name).write_bytes(first.read_bytes())
    Segmenter.from_path(tiny_checkpoint, backend="onnxruntime", precision="int8", calibration=subset, cache_dir=cache)
    assert len(list(cache.glob("*-int8-*.onnx"))) == 2  # another calibration set: another file
    # The accuracy record gates the default: within 1.0 mIoU point for a runtime, or not used there.
    quantize.write_accuracy_record(
        int8_file, {"onnxruntime": {"fp32": 0.70, "int8": 0.6905}, "openvino": {"fp32": 0.70, "int8": 0.6895}}, "t"
    )
    assert quantize.verified_runtimes(int8_file) == ["onnxruntime"]
    auto = Segmenter.from_path(tiny_checkpoint, device="cpu", cache_dir=cache)
    assert set(auto.selection) == {"onnxruntime int8", "onnxruntime fp32", "openvino default precision"}
    assert quantize.find_verified_int8(cache / next(cache.glob("*-dynamic.onnx")).name, cache) == (int8_file, ["onnxruntime"])
    # The INT8 file is dynamic: it serves the same model at another network size too (the node runs 256x832).
    other_size = Segmenter.from_path(tiny_checkpoint, device="cpu", cache_dir=cache, input_size=(96, 320))
    assert "onnxruntime int8" in other_size.selection
    fixed = export_onnx(tiny_checkpoint, tmp_path / "fixed" / "tiny.onnx")
    fixed_int8 = quantize.cached_int8(fixed, calibration, cache)
    quantize.write_accuracy_record(fixed_int8, {"openvino": {"fp32": 0.7, "int8": 0.7}}, "t")
    assert quantize.find_verified_int8(fixed, cache, (96, 320)) == (int8_file, ["onnxruntime"])  # fixed 64x192: not for 96x320
    assert quantize.find_verified_int8(fixed, cache, (64, 192)) == (fixed_int8, ["openvino"])


def test_int8_of_the_shipped_model_stays_close_to_fp32(cityscapes_root: Path, tmp_path: Path) -> None:
    model = Path(__file__).resolve().parents[1] / "models" / SYNTHETIC_MODEL
    calibration = cityscapes_root / "leftImg8bit" / "train"
    fp32 = Segmenter.from_path(model, backend="onnxruntime", precision="fp32", cache_dir=tmp_path)
    pictures = [cv2.imread(str(p))[:, :, ::-1].copy() for p in sorted((cityscapes_root / "leftImg8bit" / "val").rglob("*.png"))]
    reference = [fp32.predict(p).labels for p in pictures]
    for backend in ("onnxruntime", "openvino"):
        int8 = Segmenter.from_path(model, backend=backend, precision="int8", calibration=calibration, cache_dir=tmp_path)
        agreement = np.mean([(int8.predict(p).labels == r).mean() for p, r in zip(pictures, reference, strict=True)])
        assert agreement >= INT8_AGREEMENT, backend


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 60), width=st.integers(1, 60), out_h=st.integers(1, 50), out_w=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_cpu_preprocessing_matches_torch_interpolate(height: int, width: int, out_h: int, out_w: int, seed: int) -> None:
    picture = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mean, std = np.array([120.0, 110.0, 100.0], np.float32), np.array([60.0, 55.0, 50.0], np.float32)
    batch, valid = preprocess_cpu([picture], (out_h, out_w), mean, std)
    expected = F.interpolate(
        torch.from_numpy(picture).permute(2, 0, 1)[None].float(), size=(out_h, out_w), mode="bilinear", align_corners=False
    )
    expected = (expected - torch.from_numpy(mean).view(1, 3, 1, 1)) / torch.from_numpy(std).view(1, 3, 1, 1)
    assert valid == (out_h, out_w) and batch.shape == (1, 3, out_h, out_w) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, expected.numpy(), atol=0.05 / 50)


@settings(max_examples=25, deadline=None)
@given(classes=st.integers(1, 6), height=st.integers(2, 12), width=st.integers(2, 12), scale=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_label_upsampling_modes(classes: int, height: int, width: int, scale: int, seed: int) -> None:
    logits = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, classes, height, width)).astype(np.float32))
    size = (height * scale, width * scale)
    (bilinear,), (present,), (nearest,) = (_cpu_labels(logits, size, mode) for mode in UPSAMPLING)
    small = logits[0].argmax(0).numpy()
    assert np.array_equal(nearest, np.repeat(np.repeat(small, scale, 0), scale, 1))  # centre-aligned, integer factor: blocks
    assert set(np.unique(present)) <= set(np.unique(small))
    reference = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0]
    assert (bilinear == reference.argmax(0).numpy()).mean() >= 0.99
    present_classes = np.unique(small)
    assert np.array_equal(present, present_classes[reference[present_classes].argmax(0).numpy()])  # argmax over present classes only
    if scale == 1:
        assert np.array_equal(bilinear, small) and np.array_equal(present, small) and np.array_equal(nearest, small)
