"""The one ModelCard: strict dict form, every field through checkpoint, ONNX and engine sidecar alike."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semseg_ros.errors import SemsegError
from semseg_ros.inference.backends import onnx_metadata
from semseg_ros.inference.export import export_onnx, sha256
from semseg_ros.inference.segmenter import Segmenter
from semseg_ros.labels import get_label_set
from semseg_ros.models.card import ModelCard, ModelConfig
from semseg_ros.models.checkpoint import model_from_checkpoint, pack_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "models").glob("*.pt"))


def a_card(**changes: object) -> ModelCard:
    card = ModelCard.build(ModelConfig(arch="unet", encoder="mobilenet_v2"), get_label_set("camvid"), (352, 480), (0.5,) * 3, (0.25,) * 3)
    return card.replace(**changes)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoints_read_as_cards(path: Path) -> None:
    stored = torch.load(path, map_location="cpu", weights_only=True)["card"]
    assert "argmax_in_graph" not in stored  # written before the card had export fields
    model, card = model_from_checkpoint(path)
    assert card.label_set == stored["label_set"] and card.classes == tuple(stored["classes"])
    assert card.input_size == tuple(stored["input_size"]) and card.model.arch == "unet" and not card.argmax_in_graph
    assert card.to_dict() == {**stored, "argmax_in_graph": False, "source_sha256": ""}  # nothing lost, nothing renamed
    assert sum(p.numel() for p in model.parameters()) > 1_000_000


def test_unknown_missing_and_mistyped_keys_are_named() -> None:
    good = a_card().to_dict()
    with pytest.raises(SemsegError, match="colour: unknown key"):
        ModelCard.from_dict({**good, "colour": 1})
    with pytest.raises(SemsegError, match=r"model\.depth: unknown key"):
        ModelCard.from_dict({**good, "model": {**good["model"], "depth": 3}})
    for key in ("model", "label_set", "classes", "colors", "mean", "std", "input_size"):
        with pytest.raises(SemsegError, match=f"{key}: required key is missing"):
            ModelCard.from_dict({k: v for k, v in good.items() if k != key})
    with pytest.raises(SemsegError, match=r"input_size: expected 2 values, got 3"):
        ModelCard.from_dict({**good, "input_size": [1, 2, 3]})
    with pytest.raises(SemsegError, match=r"mean\[1\]: expected a number"):
        ModelCard.from_dict({**good, "mean": [0.1, "x", 0.3]})
    with pytest.raises(SemsegError, match="checkpoint card: expected a mapping"):
        ModelCard.from_dict([1, 2], "checkpoint card")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    label_set=st.sampled_from(["camvid", "cityscapes19", "road"]),
    size=st.tuples(st.integers(1, 4096), st.integers(1, 4096)),
    mean=st.tuples(*[st.floats(0, 1)] * 3),
    argmax=st.booleans(),
    sha=st.text("0123456789abcdef", max_size=64),
    channels=st.none() | st.lists(st.integers(1, 512), min_size=1, max_size=5),
)
def test_every_field_survives_json_and_back(
    label_set: str, size: tuple[int, int], mean: tuple[float, float, float], argmax: bool, sha: str, channels: list[int] | None
) -> None:
    labels = get_label_set(label_set)
    card = ModelCard.build(ModelConfig(arch="unet", decoder_channels=channels), labels, size, mean, (0.2, 0.3, 0.4))
    card = card.replace(argmax_in_graph=argmax, source_sha256=sha)
    back = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))  # the ONNX metadata and engine sidecar path
    assert back == card and back.source_sha256 == sha
    assert {f.name for f in dataclasses.fields(ModelCard)} == set(card.to_dict())  # every field, no other key


def test_weights_file_is_never_carried() -> None:
    card = ModelCard.build(ModelConfig(encoder_weights="/tmp/encoder.pth"), get_label_set("road"), (64, 64), (0.5,) * 3, (0.5,) * 3)
    assert card.model.encoder_weights is None and card.to_dict()["model"]["encoder_weights"] is None


def test_checkpoint_onnx_and_segmenter_give_one_card(tiny_checkpoint: Path, tmp_path: Path) -> None:
    _, from_checkpoint = model_from_checkpoint(tiny_checkpoint)
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "argmax.onnx", argmax=True)
    from_onnx = onnx_metadata(onnx_path)
    expected = from_checkpoint.replace(argmax_in_graph=True, source_sha256=sha256(tiny_checkpoint))
    assert from_onnx.to_dict() == expected.to_dict()  # every field, provenance included
    segmenter = Segmenter.from_path(onnx_path, backend="onnxruntime", device="cpu")
    assert segmenter.card.to_dict() == expected.to_dict()
    packed = pack_checkpoint(tiny_checkpoint, tmp_path / "packed.pt")
    assert model_from_checkpoint(packed)[1].to_dict() == from_checkpoint.to_dict()


def test_exports_older_than_the_card_fields_still_load(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Old exports held argmax and provenance only in their own metadata properties."""
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "new.onnx", argmax=True)
    proto = onnx.load(str(onnx_path))
    for prop in proto.metadata_props:
        if prop.key == "semseg_ros.card":
            old = json.loads(prop.value)
            del old["argmax_in_graph"], old["source_sha256"]
            prop.value = json.dumps(old)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    assert onnx_metadata(tmp_path / "old.onnx").to_dict() == onnx_metadata(onnx_path).to_dict()
    assert onnx_metadata(tmp_path / "old.onnx").argmax_in_graph


def test_a_broken_card_in_a_file_is_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    del data["card"]["classes"]
    torch.save(data, tmp_path / "broken.pt")
    with pytest.raises(SemsegError, match=r"checkpoint card\.classes: required key is missing"):
        model_from_checkpoint(tmp_path / "broken.pt")
    proto = onnx.load(str(export_onnx(tiny_checkpoint, tmp_path / "m.onnx")))
    for prop in proto.metadata_props:
        if prop.key == "semseg_ros.card":
            prop.value = json.dumps({**json.loads(prop.value), "palette": []})
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(SemsegError, match=r"bad.onnx: semseg_ros.card.palette: unknown key"):
        onnx_metadata(tmp_path / "bad.onnx")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_size": [-64, 192]}, r"input_size: \[-64, 192\], expected height and width of 1 to 8192"),
        ({"input_size": [0, 0]}, "input_size"),
        ({"input_size": [1_000_000, 1_000_000]}, "input_size"),
        ({"colors": "first=[999, -5, 3]"}, "colors: each colour is three integers 0-255"),
        ({"colors": "short"}, "colors: 2 colours for 3 classes"),
        ({"classes": ["a", "a", "b"]}, "classes: names must be distinct"),
        ({"classes": [f"c{i}" for i in range(300)], "colors": [[0, 0, 0]] * 300}, "classes: 300 classes, expected 1 to 255"),
        ({"std": [0.0, 0.0, 0.0]}, "std:"),
        ({"std": [float("nan")] * 3}, "std:"),
        ({"mean": [1e301, 0.0, 0.0]}, "mean:"),
    ],
)
def test_values_no_model_can_have_are_named(change: dict, message: str) -> None:
    """Types alone let through cards that crashed predict and the node deep inside (an adversary's list)."""
    good = {**a_card().to_dict(), "classes": ["a", "b", "c"], "colors": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}
    if change.get("colors") == "first=[999, -5, 3]":
        change = {"colors": [[999, -5, 3], [4, 5, 6], [7, 8, 9]]}
    elif change.get("colors") == "short":
        change = {"colors": [[1, 2, 3], [4, 5, 6]]}
    with pytest.raises(SemsegError, match=f"checkpoint card.{message}"):
        ModelCard.from_dict({**good, **change}, "checkpoint card")


def test_a_card_that_contradicts_its_weights_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import numpy as np

    stored = torch.load(tiny_checkpoint, weights_only=True)
    two = {"classes": stored["card"]["classes"][:2], "colors": stored["card"]["colors"][:2]}
    edited = tmp_path / "edited.pt"
    torch.save({**stored, "card": {**stored["card"], **two}}, edited)
    with pytest.raises(SemsegError, match=r"weights do not fit its card \(2 classes, \w+\): size mismatch for \S+"):
        Segmenter.from_path(edited, backend="torch", device="cpu")
    picture = np.zeros((64, 96, 3), np.uint8)
    torch.save({**stored, "card": {**stored["card"], "argmax_in_graph": True}}, edited)
    with pytest.raises(SemsegError, match="says argmax_in_graph, but the model outputs"):
        Segmenter.from_path(edited, backend="torch", device="cpu").predict(picture)
    # An ONNX file's card is not checked against weights at load: the first frame is (it once wrote ids up to 18 for 2 classes).
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "m.onnx", dynamic=True)
    model = onnx.load(str(onnx_path))
    for prop in model.metadata_props:
        if prop.key == "semseg_ros.card":
            prop.value = json.dumps({**json.loads(prop.value), **two})
    onnx.save(model, str(onnx_path))
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(SemsegError, match="card names 2 classes: card and weights disagree"):
            Segmenter.from_path(onnx_path, backend=backend, device="cpu").predict(picture)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"classes": ' + "9" * 5000 + "}"])
def test_an_onnx_card_json_cannot_escape_the_error_handling(text: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "m.onnx")
    model = onnx.load(str(onnx_path))
    for prop in model.metadata_props:
        if prop.key == "semseg_ros.card":
            prop.value = text
    onnx.save(model, str(onnx_path))
    with pytest.raises(SemsegError, match=r"semseg_ros\.card metadata is not JSON"):
        onnx_metadata(onnx_path)
