"""Deep Image Prior (Ulyanov et al. 2018): a randomly initialised encoder–decoder fitted to one noisy image.

`GroupedSkipNet` holds one independent network per image as the groups of grouped
convolutions: image g's channels only ever meet image g's weights, BatchNorm
normalises each channel of each group on its own, and Adam is element-wise, so
fitting G images at once is G separate DIP fits run in one tensor (not one net
shared by a batch). Each image's weights and input are drawn from its own seeded
generator, so its fit does not depend on which other images are in the batch.

The network is Ulyanov's `skip` architecture, smaller: per level a stride-2 conv
and a conv (BN, LeakyReLU) down, a 1×1 skip branch from the level's input, and on
the way up upsample ×2, concatenate the skip, BN, conv, 1×1 conv; a sigmoid output.
`arch: plain` drops the skip branches (an hourglass).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from stages.dip_ddpm.config import NetParams


def _block(cin: int, cout: int, groups: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin * groups, cout * groups, kernel, stride, kernel // 2, groups=groups, padding_mode="reflect"),
        nn.BatchNorm2d(cout * groups),
        nn.LeakyReLU(0.2),
    )


def _cat(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate channels group by group: (1, G·ca, H, W), (1, G·cb, H, W) -> (1, G·(ca+cb), H, W)."""
    n, _, h, w = a.shape
    return torch.cat([a.view(n, groups, -1, h, w), b.view(n, groups, -1, h, w)], 2).view(n, -1, h, w)


class GroupedSkipNet(nn.Module):
    """G independent DIP networks: (1, G·input_channels, H, W) -> (G, 3, H, W) in [0, 1]."""

    def __init__(self, net: NetParams, groups: int, out_channels: int = 3) -> None:
        super().__init__()
        self.groups, self.skip, self.mode = groups, net.arch == "skip", net.upsample
        chans = [net.input_channels, *net.channels]
        self.down = nn.ModuleList(
            nn.Sequential(_block(chans[i], chans[i + 1], groups, 3, 2), _block(chans[i + 1], chans[i + 1], groups, 3))
            for i in range(len(net.channels))
        )
        self.skips = nn.ModuleList(
            _block(chans[i], net.skip_channels, groups, 1) for i in range(len(net.channels)) if self.skip
        )
        self.up = nn.ModuleList()
        levels = len(net.channels)
        for i in range(levels):
            deeper = net.channels[min(i + 1, levels - 1)]  # up[i] eats up[i + 1]'s output (the bottom: down's)
            cin = deeper + (net.skip_channels if self.skip else 0)
            cout = net.channels[i]
            self.up.append(
                nn.Sequential(nn.BatchNorm2d(cin * groups), _block(cin, cout, groups, 3), _block(cout, cout, groups, 1))
            )
        self.out = nn.Conv2d(net.channels[0] * groups, out_channels * groups, 1, groups=groups)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats, h = [], z
        for i, down in enumerate(self.down):
            if self.skip:
                feats.append(self.skips[i](h))
            h = down(h)
        for i in reversed(range(len(self.down))):
            h = nn.functional.interpolate(h, scale_factor=2, mode=self.mode)
            if self.skip:
                h = _cat(feats[i], h, self.groups)
            h = self.up[i](h)
        out = torch.sigmoid(self.out(h))
        return out.view(self.groups, -1, *out.shape[-2:])

    def init_per_group(self, seeds: list[int]) -> None:
        """Draw group g's weights from its own generator (PyTorch's default conv init, BN at 1/0)."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for k, module in enumerate(convs):
            w, b = module.weight.data, module.bias.data
            per_w, per_b = w.shape[0] // self.groups, b.shape[0] // self.groups
            bound = 1 / w[0].numel() ** 0.5
            for g, seed in enumerate(seeds):
                gen = torch.Generator().manual_seed(seed * 1000 + k)
                nn.init.kaiming_uniform_(w[g * per_w : (g + 1) * per_w], a=5**0.5, generator=gen)
                nn.init.uniform_(b[g * per_b : (g + 1) * per_b], -bound, bound, generator=gen)


@dataclasses.dataclass
class FitResult:
    final: torch.Tensor  # (G, 3, H, W) in [0, 1]: the output at the last iteration
    snapshots: dict[int, torch.Tensor]  # iteration -> (G, 3, H, W) output at that iteration
    seconds: float


def image_seeds(seed: int, indices: list[int]) -> list[int]:
    """One seed per image (its index in the prepared set), so a fit does not depend on the batch."""
    return [seed * 100_003 + i for i in indices]


def fit(
    noisy: torch.Tensor, net: NetParams, iterations: int, seeds: list[int], record_every: int = 0,
    device: torch.device | str = "cpu", callback: Callable[[int, torch.Tensor], None] | None = None,
    desc: str = "dip",
) -> FitResult:  # fmt: skip
    """Fit one DIP network per image of `noisy` ((G, 3, H, W) in [0, 1], unclipped) for `iterations` Adam steps.

    The loss is the sum over images of each image's MSE to its noisy observation (so each
    network's gradient is that of its own fit). Every `record_every` iterations the output of
    that iteration's forward pass is kept (Ulyanov records the same).
    """
    groups, _, h, w = noisy.shape
    if len(seeds) != groups:
        raise ValueError(f"{groups} images but {len(seeds)} seeds")
    model = GroupedSkipNet(net, groups).to(device)
    model.init_per_group(seeds)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    z = torch.cat([torch.rand((1, net.input_channels, h, w), generator=g) * 0.1 for g in gens], 1).to(device)
    target = noisy.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=net.lr, fused=True)
    snapshots: dict[int, torch.Tensor] = {}
    out = torch.zeros_like(target)
    start = time.perf_counter()
    for it in tqdm(range(1, iterations + 1), desc=desc, leave=False, mininterval=5):
        zi = z
        if net.input_noise > 0:
            zi = z + net.input_noise * torch.cat(
                [torch.randn((1, net.input_channels, h, w), generator=g) for g in gens], 1
            ).to(device)
        out = model(zi)
        loss = ((out - target) ** 2).mean(dim=(1, 2, 3)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if record_every and it % record_every == 0:
            snapshots[it] = out.detach().cpu()
            if callback:
                callback(it, snapshots[it])
    return FitResult(out.detach().cpu(), snapshots, time.perf_counter() - start)


def flops_per_iteration(net: NetParams, size: int) -> int:
    """FLOPs of one DIP iteration (forward + backward) for one image, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = GroupedSkipNet(net, 1)
    z = torch.zeros(1, net.input_channels, size, size)
    with FlopCounterMode(display=False) as counter:
        model(z).sum().backward()
    return int(counter.get_total_flops())
