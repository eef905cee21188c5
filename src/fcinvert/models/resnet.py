"""ResNet-18 regressing the standardised selected θ directly from a spectrum (Stage II b).

The standard topology of He et al. (2016): a 7×7 stride-2 stem, max-pool, four stages of two
BasicBlocks ([2, 2, 2, 2]) with 64·(1, 2, 4, 8) channels, global average pool, a linear head —
written here in plain torch with torchvision's parameter names, so a torchvision ``resnet18``
state dict loads unchanged (torchvision is not a dependency: it would pin another torch).
Input has 1 channel (2 with the mask channel); the head has K outputs. ``width`` scales every
channel count (64 is the standard network; smaller widths are for tests only).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import file_sha256

STANDARD_WIDTH = 64


class ResNetConfig(BaseModel):
    """ResNet-18 settings (stored in the model bundle)."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(default=STANDARD_WIDTH, gt=0, description="channels of the first stage")
    pretrained: str = Field(
        default="none: trained from scratch", description="where the initial weights came from"
    )


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (a 1×1 projection when shapes change)."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample: nn.Module | None = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18: prepared inputs (B, C, nq, nE) → standardised θ (B, K)."""

    def __init__(self, config: ResNetConfig, in_channels: int, outputs: int) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.conv1 = nn.Conv2d(in_channels, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(w, w, 1)
        self.layer2 = self._stage(w, 2 * w, 2)
        self.layer3 = self._stage(2 * w, 4 * w, 2)
        self.layer4 = self._stage(4 * w, 8 * w, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, outputs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for module in self.modules():  # zero-init the last BN of each block (torchvision option)
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)
        # channels-last weights and activations: ~1.5× faster convolutions on CPU (oneDNN)
        self.to(memory_format=torch.channels_last)

    @staticmethod
    def _stage(inputs: int, outputs: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(inputs, outputs, stride), BasicBlock(outputs, outputs, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_torchvision_weights(model: ResNet18, path: str | Path) -> str:
    """Load a torchvision ``resnet18`` state dict (ImageNet) into ``model``; returns provenance.

    Accepts ``.safetensors`` or a ``.pth``/``.pt`` state dict, which is read only with
    ``torch.load(weights_only=True)`` (tensors, never arbitrary objects). The RGB stem is
    summed over colour to one channel (a mask channel starts at zero); the ImageNet head
    (``fc``) is dropped: the K-output head starts fresh.
    """
    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such weights file")
    state = _read_state_dict(path)
    if model.config.width != STANDARD_WIDTH:
        raise FcinvertError(f"{path}: pretrained weights need the standard width {STANDARD_WIDTH}")
    own = model.state_dict()
    wanted = {k for k in own if not k.startswith("fc.")}
    given = {k for k in state if not k.startswith("fc.")}
    if wanted != given:
        missing = sorted(wanted - given)
        extra = sorted(given - wanted)
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise FcinvertError(f"{path}: not a torchvision resnet18 state dict ({detail})")
    loaded = {}
    for key in wanted:
        tensor = state[key]
        if key == "conv1.weight":
            tensor = _stem(tensor, own[key].shape[1], path)
        if tensor.shape != own[key].shape:
            raise FcinvertError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, resnet18 needs "
                f"{tuple(own[key].shape)}"
            )
        loaded[key] = tensor.to(own[key].dtype)
    model.load_state_dict(loaded, strict=False)
    digest = file_sha256(path)[:16]
    return f"torchvision resnet18 weights {path.name} (sha256 {digest}…), conv1 summed over RGB"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        if path.suffix in (".pth", ".pt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not all(
                isinstance(v, torch.Tensor) for v in state.values()
            ):
                raise FcinvertError(f"{path}: not a state dict of tensors")
            return state
    except (
        SafetensorError,
        pickle.UnpicklingError,
        RuntimeError,
        OSError,
        ValueError,
        EOFError,
    ) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FcinvertError(f"{path}: cannot read weights ({message})") from None
    raise FcinvertError(f"{path}: weights must be .safetensors, .pth or .pt")


def _stem(weight: torch.Tensor, channels: int, path: Path) -> torch.Tensor:
    """ImageNet stem (64, 3, 7, 7) → (64, channels, 7, 7): RGB summed, extra channels zero."""
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise FcinvertError(f"{path}: conv1.weight has shape {tuple(weight.shape)}, not RGB")
    gray = weight.sum(dim=1, keepdim=True)
    extra = torch.zeros(weight.shape[0], channels - 1, *weight.shape[2:], dtype=weight.dtype)
    return torch.cat([gray, extra], dim=1)
