"""Model factory, checkpoints and summaries."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from semseg_ros.errors import SemsegError
from semseg_ros.models.card import ModelCard
from semseg_ros.models.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from semseg_ros.models.factory import ModelConfig, ResidualDecoderStage, build_model
from semseg_ros.models.summary import summarize

ARCHS = [
    ("unet", "mobilenet_v2", 0),
    ("unet", "tu-mobilenetv3_large_100", 0),
    ("unet", "resnet18", 1),
    ("unet", "resnext50_32x4d", 1),
    ("fpn", "resnext50_32x4d", 0),
    ("fpn", "resnet34", 0),
    ("deeplabv3plus", "resnet50", 0),
    ("fcn_resnet50", "", 0),
    ("deeplabv3_resnet50", "", 0),
]


@pytest.mark.parametrize(("arch", "encoder", "res_blocks"), ARCHS)
def test_forward_backward_at_input_resolution(arch: str, encoder: str, res_blocks: int) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, encoder=encoder or "resnet18", decoder_res_blocks=res_blocks, aux_head=True), 5)
    images = torch.randn(2, 3, 64, 128)
    outputs = model(images, all_outputs=True)
    assert outputs["out"].shape == (2, 5, 64, 128) and outputs["aux"].shape == (2, 5, 64, 128)
    (outputs["out"].mean() + outputs["aux"].mean()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_any_input_size_gives_logits_at_that_size() -> None:
    model = build_model(ModelConfig(arch="fpn", encoder="resnet18"), 3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 123)).shape == (1, 3, 75, 123)


def test_decoder_res_blocks_extend_the_unet_decoder() -> None:
    plain = build_model(ModelConfig(arch="unet", encoder="resnet18"), 4)
    residual = build_model(ModelConfig(arch="unet", encoder="resnet18", decoder_res_blocks=2), 4)
    stages = [m for m in residual.modules() if isinstance(m, ResidualDecoderStage)]
    assert len(stages) == 5 and all(len(s.residual) == 2 for s in stages)
    assert sum(p.numel() for p in residual.parameters()) > sum(p.numel() for p in plain.parameters())
    with pytest.raises(SemsegError, match="unet only"):
        build_model(ModelConfig(arch="fpn", encoder="resnet18", decoder_res_blocks=1), 4)


def test_encoder_weights_from_a_local_file_and_offline_errors(tmp_path: Path) -> None:
    source = build_model(ModelConfig(arch="unet", encoder="resnet18"), 3)
    path = tmp_path / "resnet18.pth"
    torch.save(source.net.encoder.state_dict(), path)
    loaded = build_model(ModelConfig(arch="fpn", encoder="resnet18", encoder_weights=str(path)), 3)
    for key, value in source.net.encoder.state_dict().items():
        assert torch.equal(loaded.net.encoder.state_dict()[key], value), key
    with pytest.raises(SemsegError, match="runs offline"):
        build_model(ModelConfig(arch="unet", encoder="resnet18", encoder_weights="imagenet"), 3)
    with pytest.raises(SemsegError, match="not available"):
        build_model(ModelConfig(arch="unet", encoder="no_such_encoder"), 3)


CARD = {
    "model": {"arch": "unet", "encoder": "mobilenet_v2"},
    "label_set": "road",
    "classes": ["background", "road"],
    "colors": [[0, 0, 0], [128, 64, 128]],
    "mean": [0.5] * 3,
    "std": [0.25] * 3,
    "input_size": [64, 128],
}


def test_checkpoint_alone_rebuilds_the_model(tmp_path: Path) -> None:
    model = build_model(ModelConfig(arch="unet", encoder="mobilenet_v2"), 2).eval()
    save_checkpoint(tmp_path / "ck.pt", model, ModelCard.from_dict(CARD))
    rebuilt, card = model_from_checkpoint(tmp_path / "ck.pt")
    assert card == ModelCard.from_dict(CARD) and card.model.decoder_res_blocks == 0  # defaults filled in
    images = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(model(images), rebuilt(images))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary files left behind


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    model = build_model(ModelConfig(arch="unet", encoder="mobilenet_v2"), 2)
    save_checkpoint(tmp_path / "ck.pt", model, ModelCard.from_dict(CARD))
    data = (tmp_path / "ck.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(SemsegError, match="not a readable semseg_ros checkpoint"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(SemsegError, match=f"no '{FORMAT}' format tag"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(SemsegError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


class Payload:
    def __reduce__(self):
        return (Path("/tmp/semseg_pwned").write_text, ("pwned",))


def test_pickle_payloads_are_not_executed(tmp_path: Path) -> None:
    target = Path("/tmp/semseg_pwned")
    target.unlink(missing_ok=True)
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"format": FORMAT, "payload": Payload()}, handle)
    with pytest.raises(SemsegError, match=r"unsafe pickle|not a readable"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not target.exists()


def test_summary_reproduces_the_seed_fpn_row() -> None:
    summary = summarize(ModelConfig(arch="fpn", encoder="resnext50_32x4d"), 8, (3, 512, 1024))
    assert summary.params == 25_588_808  # the seed's torchsummary figure for FPN-ResNeXt50 (8 classes)
    assert summary.params_mb == pytest.approx(97.61, abs=0.01)
    assert 3000 < summary.forward_backward_mb < 6000


def test_atomic_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    """Exports and checkpoints were written 0600 (mkstemp's mode): other users could not read them."""
    from semseg_ros.files import atomic_write

    atomic_write(tmp_path / "a.onnx", b"x")
    (tmp_path / "b.txt").write_bytes(b"x")
    assert (tmp_path / "a.onnx").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777
