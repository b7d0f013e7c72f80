"""The two dynconv models: one small ResNet-style backbone, two first convolutions.

- `DynamicConv2d`: the first convolution is generated per image from which channels are present.
  A bank of K candidate kernels W_k (out, 3, k, k) with biases b_k; an attention MLP maps the
  channel-presence vector m ∈ {0,1}³ (and, with `pooled`, the present channels' spatial means) to
  π = softmax(MLP(·)/T) over the K kernels; the image's kernel is Σ π_k W_k, applied to the input
  with the absent channels zeroed, so the output never depends on absent channels' values. With
  `redistribute`, the absent channels' kernel columns are shared out over the present ones (W'_c =
  W_c + Σ_absent W_a / |present| for each present c): natural images' channels are strongly correlated,
  so a single channel then drives the next layer much as the full image would (the way RGB-trained
  first layers are adapted to grey input by summing their kernels over channels). This is
  Dynamic Convolution (Chen et al., CVPR 2020: attention over K kernels, aggregated before the one
  convolution) with the attention driven by channel presence, the weight-generating network the sheet
  asks for. Nothing depends on the input resolution.
- `naive`: the same backbone with a plain nn.Conv2d(3, width); missing channels are zero-filled
  (zero after normalisation, i.e. the dataset mean).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stages.common import checkpoint
from stages.common.io import DataError
from stages.dynconv import config


class DynamicConv2d(nn.Module):
    """(B, C, H, W) + presence mask (B, C) -> (B, out, H', W'): the kernel is generated from the mask."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 kernels: int = 4, hidden: int = 32, pooled: bool = True, temperature: float = 1.0,
                 redistribute: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.pad = in_channels, out_channels, stride, kernel_size // 2
        self.pooled, self.temperature, self.redistribute = pooled, temperature, redistribute
        self.weight = nn.Parameter(torch.empty(kernels, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(kernels, out_channels))
        for k in range(kernels):
            nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))
        self.attention = nn.Sequential(
            nn.Linear(in_channels * (2 if pooled else 1), hidden), nn.ReLU(inplace=True), nn.Linear(hidden, kernels)
        )

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention over the K kernels, (B, K); sees only the mask and the present channels."""
        feats = [mask]
        if self.pooled:
            feats.append(x.mean((2, 3)) * mask)  # (B, C), zero for absent channels
        return torch.softmax(self.attention(torch.cat(feats, 1)) / self.temperature, dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x * mask[:, :, None, None]  # absent channels are exactly 0: their kernel columns see nothing
        pi = self.attend(x, mask)  # (B, K)
        k = self.weight.shape[-1]
        weight = (pi @ self.weight.flatten(1)).view(b, self.out_channels, c, k, k)  # one kernel per image
        if self.redistribute:
            present = mask[:, None, :, None, None]  # (B, 1, C, 1, 1)
            absent_sum = (weight * (1 - present)).sum(2, keepdim=True)  # (B, out, 1, k, k)
            weight = weight + present * absent_sum / mask.sum(1).clamp(min=1)[:, None, None, None, None]
        weight = weight.reshape(b * self.out_channels, c, k, k)
        bias = (pi @ self.bias).flatten()  # (B·out,)
        y = F.conv2d(x.reshape(1, b * c, h, w), weight, bias, self.stride, self.pad, groups=b)
        return y.view(b, self.out_channels, y.shape[-2], y.shape[-1])


class NaiveConv2d(nn.Conv2d):
    """A plain first convolution; the mask zero-fills the missing channels."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x * mask[:, :, None, None])


class ChannelNet(nn.Module):
    """First conv (dynamic or naive) -> BN-ReLU -> stages of torchvision BasicBlocks -> global pool -> linear."""

    def __init__(self, stem: nn.Module, width: int, blocks: list[int], num_classes: int, dropout: float = 0.0) -> None:
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        self.stem = stem
        self.stem_norm = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(blocks):
            c_out, stride = width * 2**i, 1 if i == 0 else 2
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or c_in != c_out):
                    down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                layers.append(BasicBlock(c_in, c_out, stride if j == 0 else 1, down))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(x.shape[0], x.shape[1], device=x.device, dtype=x.dtype)
        x = self.layers(self.stem_norm(self.stem(x, mask)))
        return self.head(self.dropout(x.mean((2, 3))))


def build(name: str, p: config.DynconvParams, num_classes: int) -> ChannelNet:
    b = p.backbone
    if name == "dynamic":
        d = p.models.dynamic
        stem: nn.Module = DynamicConv2d(3, b.width, 3, b.stem_stride, d.kernels, d.hidden, d.pooled_attention,
                                        d.temperature, d.redistribute)  # fmt: skip
    else:
        stem = NaiveConv2d(3, b.width, 3, b.stem_stride, padding=1)
    return ChannelNet(stem, b.width, list(b.blocks), num_classes, b.dropout)


def subset_mask(subset: str, n: int) -> torch.Tensor:
    """'RB' -> (n, 3) float mask [1, 0, 1]."""
    row = torch.tensor([float(ch in subset) for ch in config.CHANNELS])
    return row.expand(n, 3).contiguous()


def sample_masks(n: int, scheme: str, g: torch.Generator) -> torch.Tensor:
    """(n, 3) channel-presence masks for a training batch.

    hierarchical: the subset size uniform in {1, 2, 3}, then a subset of that size uniformly (ChannelViT's
    hierarchical channel sampling); uniform: each of the 7 subsets equally; none: always RGB; a subset
    name ('B'): always that subset."""
    if scheme == "none":
        return torch.ones(n, 3)
    if scheme in config.SUBSETS:
        return subset_mask(scheme, n)
    if scheme == "uniform":
        codes = torch.randint(1, 8, (n,), generator=g)  # 1..7 as 3-bit masks
        return torch.stack([(codes >> i) & 1 for i in range(3)], 1).float()
    sizes = torch.randint(1, 4, (n,), generator=g)
    keys = torch.rand(n, 3, generator=g)
    ranks = keys.argsort(1).argsort(1)  # a uniform random permutation per row
    return (ranks < sizes[:, None]).float()


def save(
    path: Path, name: str, states: list[dict], p: config.DynconvParams, classes: list[str], image_size: int
) -> None:
    """Tensors and plain values only (read back with weights_only=True): the settings as dicts, not dataclasses."""
    from stages.common.io import atomic_path

    blob = {"name": name, "states": states, "backbone": dict(vars(p.backbone)), "variant": dict(vars(p.model(name))),
            "classes": list(classes), "image_size": int(image_size)}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(checkpoint.plain(blob, str(path)), tmp)


def load(path: Path, device: torch.device | str = "cpu") -> tuple[list[ChannelNet], dict]:
    """Every run's model of one saved file, in eval mode, and the saved metadata; a file that is not a
    dynconv-train model (missing, empty, cut short, another file) is a DataError naming it."""
    blob = checkpoint.load(path, made_by="dynconv-train")
    try:
        p = config.DynconvParams()
        p.backbone = config.BackboneParams(**blob["backbone"])
        if blob["name"] == "dynamic":
            p.models.dynamic = config.DynamicParams(**blob["variant"])
        models = []
        for state in blob["states"]:
            model = build(blob["name"], p, len(blob["classes"]))
            model.load_state_dict(state)
            models.append(model.to(device).eval())
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{path}: not a model written by dynconv-train ({type(err).__name__}); run it again") from None
    return models, blob


@torch.no_grad()
def predict(
    model: ChannelNet, x: torch.Tensor, subset: str, batch_size: int, device: torch.device | str
) -> torch.Tensor:
    """Predicted labels of normalised images x (N, 3, S, S) with only `subset`'s channels present."""
    model.eval()
    out = []
    for chunk in x.split(batch_size):
        out.append(model(chunk.to(device), subset_mask(subset, len(chunk)).to(device)).argmax(1).cpu())
    return torch.cat(out)
