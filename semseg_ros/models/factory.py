"""Model factory: segmentation_models_pytorch and torchvision architectures behind one interface.

`build_model(config, num_classes)` returns a `SegmentationNet` whose forward maps a normalised
(B, 3, H, W) batch of any size to (B, C, H, W) logits at the input resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from semseg_ros.errors import SemsegError
from semseg_ros.models.card import ModelConfig  # re-exported: the `model` config section

SMP_ARCHS = {"unet": smp.Unet, "fpn": smp.FPN, "deeplabv3plus": smp.DeepLabV3Plus}
TORCHVISION_ARCHS = {
    "fcn_resnet50": torchvision.models.segmentation.fcn_resnet50,
    "deeplabv3_resnet50": torchvision.models.segmentation.deeplabv3_resnet50,
}


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn plus identity, then relu."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class ResidualDecoderStage(nn.Module):
    """An smp UNet decoder block followed by residual blocks (the seed's 'res blocks in the decoder')."""

    def __init__(self, block: nn.Module, channels: int, count: int):
        super().__init__()
        self.block = block
        self.residual = nn.Sequential(*[ResidualBlock(channels) for _ in range(count)])

    def forward(
        self, feature_map: torch.Tensor, target_height: int, target_width: int, skip_connection: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.residual(self.block(feature_map, target_height, target_width, skip_connection=skip_connection))


class SegmentationNet(nn.Module):
    """Any-size input, logits at input resolution, optional auxiliary logits and encoder features."""

    def __init__(self, net: nn.Module, family: str, aux_head: nn.Module | None = None, stride: int = 32):
        super().__init__()
        self.net = net
        self.family = family
        self.aux_head = aux_head
        self.stride = stride

    def forward(self, x: torch.Tensor, all_outputs: bool = False) -> Any:
        """Logits (B, C, H, W); with all_outputs, {"out": logits, "aux": aux logits (when the head exists),
        "features": encoder features (smp)} (a flag, not a second method, so DDP and compile see it)."""
        outputs = self._outputs(x)
        return outputs if all_outputs else outputs["out"]

    def _outputs(self, x: torch.Tensor) -> dict[str, Any]:
        height, width = x.shape[-2:]
        # Traced (ONNX export), sizes are tensors and a Python `if` on them would be frozen into the graph
        # (a TracerWarning). Export admits only multiples of 32 (inference/export.py), which need no
        # padding and at which smp's heads and torchvision's models return logits at the input size
        # (parity_check compares shapes; test_cli exports every smp architecture).
        tracing = torch.jit.is_tracing()
        pad_h, pad_w = (0, 0) if tracing else (-height % self.stride, -width % self.stride)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        result: dict[str, Any] = {}
        if self.family == "smp":
            net: Any = self.net
            features = net.encoder(x)
            logits = net.segmentation_head(net.decoder(features))
            result["features"] = features
            if self.aux_head is not None:
                result["aux"] = self.aux_head(features[-2])
        else:
            outputs = self.net(x)
            logits = outputs["out"]
            if "aux" in outputs:
                result["aux"] = outputs["aux"]
        resize = (lambda t: t) if tracing else (lambda t: _resize(t, x.shape[-2:]))
        result["out"] = resize(logits)[..., :height, :width]
        if "aux" in result:
            result["aux"] = resize(result["aux"])[..., :height, :width]
        return result


def _resize(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if logits.shape[-2:] == size:
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _aux_head(in_channels: int, num_classes: int) -> nn.Module:
    hidden = max(in_channels // 4, 16)
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.1),
        nn.Conv2d(hidden, num_classes, 1),
    )


def build_model(model_config: ModelConfig, num_classes: int) -> SegmentationNet:
    """The network described by a `ModelConfig` section (random init unless encoder_weights is a file)."""
    arch = model_config.arch
    if arch in SMP_ARCHS:
        kwargs: dict[str, Any] = {"encoder_name": model_config.encoder, "encoder_weights": None, "classes": num_classes}
        if arch == "unet" and model_config.decoder_channels:
            kwargs["decoder_channels"] = tuple(model_config.decoder_channels)
        if model_config.fpn_channels:
            if arch != "fpn" or len(model_config.fpn_channels) != 2 or model_config.fpn_channels[1] % 32:
                raise SemsegError("model.fpn_channels: [pyramid, segmentation] channels (segmentation a multiple of 32), arch fpn only")
            kwargs["decoder_pyramid_channels"], kwargs["decoder_segmentation_channels"] = model_config.fpn_channels
        try:
            net = SMP_ARCHS[arch](**kwargs)
        except (KeyError, ValueError) as exc:
            raise SemsegError(f"model.encoder '{model_config.encoder}' is not available for {arch}: {exc}") from None
        if model_config.decoder_res_blocks:
            if arch != "unet":
                raise SemsegError("model.decoder_res_blocks applies to arch unet only")
            net.decoder.blocks = nn.ModuleList(
                ResidualDecoderStage(block, block.conv2[0].out_channels, model_config.decoder_res_blocks) for block in net.decoder.blocks
            )
        aux = _aux_head(net.encoder.out_channels[-2], num_classes) if model_config.aux_head else None
        model = SegmentationNet(net, "smp", aux, stride=net.encoder.output_stride)
        target: nn.Module = net.encoder
    elif arch in TORCHVISION_ARCHS:
        net = TORCHVISION_ARCHS[arch](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=model_config.aux_head)
        model = SegmentationNet(net, "torchvision", stride=8)
        target = net.backbone
    else:
        raise SemsegError(f"model.arch '{arch}' is not one of {', '.join([*SMP_ARCHS, *TORCHVISION_ARCHS])}")
    if model_config.encoder_weights is not None:
        load_encoder_weights(target, model_config.encoder_weights)
    return model


def load_encoder_weights(encoder: nn.Module, source: str) -> None:
    """Load encoder weights from a local state-dict file (no downloads: this runs offline)."""
    path = Path(source).expanduser()
    if not path.is_file():
        hint = "a hub name would need a download" if "/" not in source and not source.endswith((".pth", ".pt")) else "file not found"
        raise SemsegError(
            f"model.encoder_weights '{source}': {hint}; semseg_ros runs offline, so download the weights file "
            "elsewhere and set model.encoder_weights to its local path, or to null for random initialisation"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SemsegError(f"{path}: cannot read encoder weights ({exc})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise SemsegError(f"{path}: expected a state dict of tensors")
    own = encoder.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise SemsegError(f"{path}: no tensor matches the encoder ({len(state)} in file, e.g. {next(iter(state), 'none')})")
    encoder.load_state_dict(matched, strict=False)
