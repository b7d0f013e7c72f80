"""Small CNN backbones shared by the image tasks (mygo, dynconv, twolayer).

- `ConvNet`: the course's template style, `depth` blocks of conv-bn-relu (×`convs_per_block`)
  then 2×2 max-pool, channels `width`, 2·width, 4·width … (capped at `max_width`),
  global average pooling, dropout and one linear head.
- `torchvision_model`: any torchvision classification architecture by name
  (resnet18, efficientnet_b0, convnext_tiny …), optionally with pretrained weights
  from a local file, or a torchvision weight enum name (downloads; needs internet).
- `build_model(arch, num_classes, ...)`: "cnn" or a torchvision name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from stages.common.io import DataError
from stages.common.params import ParamsError


@dataclasses.dataclass
class CNNConfig:
    width: int = 32  # channels of the first block; doubles every block
    depth: int = 3  # conv-bn-relu-pool blocks
    convs_per_block: int = 1
    kernel_size: int = 3
    max_width: int = 512
    dropout: float = 0.0


class ConvNet(nn.Module):
    """(B, C, H, W) -> (B, num_classes); works for any H, W ≥ 2**depth thanks to global pooling."""

    def __init__(self, num_classes: int, cfg: CNNConfig | None = None, in_channels: int = 3) -> None:
        super().__init__()
        cfg = cfg or CNNConfig()
        if cfg.width < 1 or cfg.depth < 1 or cfg.convs_per_block < 1 or cfg.kernel_size % 2 == 0:
            raise ParamsError(f"CNN needs width, depth, convs_per_block ≥ 1 and an odd kernel_size, got {cfg}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(cfg.depth):
            c_out = min(cfg.width * 2**i, cfg.max_width)
            for _ in range(cfg.convs_per_block):
                layers += [
                    nn.Conv2d(c_in, c_out, cfg.kernel_size, padding=cfg.kernel_size // 2, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                ]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))  # (B, c_out, H/2^(i+1), W/2^(i+1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)  # (B, C)
        return self.head(self.dropout(x))


def torchvision_model(name: str, num_classes: int, weights: str = "", small_input: bool = False) -> nn.Module:
    """A torchvision classifier by name with a fresh `num_classes` head.

    weights: "" (random init) | a local file path (a state_dict, or a dict with
    'state_dict'/'model') | "torchvision:<ENUM>" such as "torchvision:DEFAULT"
    (downloaded by torchvision; needs internet). small_input: for 32-pixel images,
    ResNet-style stems lose their stride-2 7×7 conv and max-pool (the CIFAR variant).
    """
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ParamsError(f"unknown architecture '{name}' (use cnn or a torchvision classification model name)")
    if weights.startswith("torchvision:"):
        model = torchvision.models.get_model(name, weights=weights.partition(":")[2])
    else:
        model = torchvision.models.get_model(name, weights=None)
        if weights:
            try:
                model.load_state_dict(_read_state_dict(weights))
            except RuntimeError as err:
                raise DataError(f"{weights}: weights do not fit {name} ({str(err).splitlines()[0]})") from None
    _replace_head(model, num_classes)
    if small_input:
        _small_stem(model, name)
    return model


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: pretrained weights file not found")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__  # torch's run to pages
        raise DataError(f"{file}: not a readable torch weights file ({reason[:200]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise DataError(f"{file}: expected a state_dict")
    return state


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear layer (fc, classifier[-1], heads.head …) for a fresh one."""
    for attr in ("fc", "classifier", "heads", "head"):
        module = getattr(model, attr, None)
        if isinstance(module, nn.Linear):
            setattr(model, attr, nn.Linear(module.in_features, num_classes))
            return
        if isinstance(module, nn.Sequential):
            for i in reversed(range(len(module))):
                if isinstance(module[i], nn.Linear):
                    module[i] = nn.Linear(module[i].in_features, num_classes)
                    return
    raise ParamsError(f"{type(model).__name__}: cannot find its classification head to resize")


def _small_stem(model: nn.Module, name: str) -> None:
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise ParamsError(f"small_input is supported for ResNet-style models only, not '{name}'")
    model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


def build_model(
    arch: str,
    num_classes: int,
    cnn: CNNConfig | None = None,
    weights: str = "",
    small_input: bool = False,
    in_channels: int = 3,
) -> nn.Module:
    if arch == "cnn":
        if weights:
            raise ParamsError("pretrained weights are for torchvision architectures, not arch 'cnn'")
        return ConvNet(num_classes, cnn, in_channels)
    return torchvision_model(arch, num_classes, weights, small_input)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
