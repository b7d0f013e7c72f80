"""Denoising diffusion (DDPM, Ho et al. 2020) in one readable file, shared by `ddpm` and `dip-ddpm`.

- `Schedule`: the β schedule (linear or cosine) and the forward process q(x_t | x_0).
- `UNet`: the noise predictor ε_θ(x_t, t): sinusoidal time embedding, residual
  blocks, self-attention at low resolutions, skip connections.
- `DDPMSampler` / `DDIMSampler`: reverse-process strategies with one interface
  (`timesteps`, `step`), so `generate` swaps them freely, as diffusers' pipelines do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# --- noise schedule and forward process ------------------------------------------------------


def beta_schedule(kind: str, timesteps: int) -> torch.Tensor:
    """β_1..β_T (float64). `linear`: Ho et al. (scaled so any T spans the same noise); `cosine`: Nichol & Dhariwal."""
    if kind == "linear":
        if timesteps < 20:
            raise ValueError(f"the linear schedule needs at least 20 timesteps (its last β is 20/T), got {timesteps}")
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {kind!r} (linear | cosine)")


def sqrt_table(values: torch.Tensor) -> torch.Tensor:
    """√ of each value, correctly rounded (in Python), as float32."""
    return torch.tensor([math.sqrt(v) for v in values.tolist()], dtype=torch.float64).float()


class Schedule:
    """Precomputed ᾱ_t and friends for T steps; t is 0-based (t = 0 is the least noisy step).

    Square roots are taken in Python (`math.sqrt`, correctly rounded everywhere), never by torch on float32:
    MKL's float32 sqrt in its portable mode rounds differently from one CPU to another (stages/__init__.py).
    """

    def __init__(self, kind: str = "linear", timesteps: int = 1000) -> None:
        self.kind, self.timesteps = kind, timesteps
        betas = beta_schedule(kind, timesteps)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.betas = betas.float()
        self.alphas_cumprod = alphas_cumprod.float()
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]]).float()
        self.sqrt_alphas_cumprod = sqrt_table(alphas_cumprod)  # √ᾱ_t
        self.sqrt_one_minus_alphas_cumprod = sqrt_table(1 - alphas_cumprod)  # √(1 − ᾱ_t)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε."""
        a = self.sqrt_alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        b = self.sqrt_one_minus_alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        return a * x0 + b * noise

    def loss(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The simple DDPM objective: ‖ε − ε_θ(x_t, t)‖² for a uniform t and Gaussian ε."""
        t = torch.randint(0, self.timesteps, (len(x0),), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        return F.mse_loss(model(self.q_sample(x0, t, noise), t), noise)


# --- the noise predictor ---------------------------------------------------------------------


@dataclasses.dataclass
class UNetConfig:
    image_size: int = 32
    channels: int = 3
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)  # one level per entry; each level after the first halves H and W
    blocks_per_level: int = 1
    attention_resolutions: tuple[int, ...] = (8,)  # feature-map sizes that get self-attention
    dropout: float = 0.0
    groups: int = 8  # GroupNorm groups


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (B,) -> (B, dim), as in the Transformer."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]  # (B, C, 1, 1): the timestep shifts every channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Single-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)  # each (B, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """ε_θ(x_t, t): (B, C, H, W) noisy images and (B,) timesteps -> (B, C, H, W) predicted noise."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, tdim, g = cfg.base_channels, 4 * cfg.base_channels, cfg.groups
        self.time_mlp = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.stem = nn.Conv2d(cfg.channels, ch, 3, padding=1)

        # Down path: record every feature map's channels for the skip connections.
        self.down, skips, res, cin = nn.ModuleList(), [ch], cfg.image_size, ch
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.blocks_per_level):
                block = nn.ModuleList([ResBlock(cin, ch * mult, tdim, cfg.dropout, g)])
                cin = ch * mult
                if res in cfg.attention_resolutions:
                    block.append(Attention(cin, g))
                self.down.append(block)
                skips.append(cin)
            if level < len(cfg.channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cin, cin, 3, stride=2, padding=1)]))
                skips.append(cin)
                res //= 2

        self.mid = nn.ModuleList([ResBlock(cin, cin, tdim, cfg.dropout, g), Attention(cin, g)])
        self.mid_out = ResBlock(cin, cin, tdim, cfg.dropout, g)

        # Up path: one more block per level than down, each eating one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.blocks_per_level + 1):
                block = nn.ModuleList([ResBlock(cin + skips.pop(), ch * mult, tdim, cfg.dropout, g)])
                cin = ch * mult
                if res in cfg.attention_resolutions:
                    block.append(Attention(cin, g))
                self.up.append(block)
            if level > 0:
                self.up.append(
                    nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cin, 3, padding=1)])
                )
                res *= 2
        self.head = nn.Sequential(nn.GroupNorm(g, cin), nn.SiLU(), nn.Conv2d(cin, cfg.channels, 3, padding=1))

    @staticmethod
    def _run_block(block: nn.ModuleList, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        for layer in block:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels))  # (B, 4·ch)
        h = self.stem(x)
        hs = [h]
        for block in self.down:
            h = self._run_block(block, h, temb)
            hs.append(h)
        h = self.mid_out(self._run_block(self.mid, h, temb), temb)
        for block in self.up:
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run_block(block, h, temb)
        return self.head(h)


# --- reverse process: samplers as strategies -------------------------------------------------


class DDPMSampler:
    """Ancestral sampling: every one of the T steps, x_{t-1} ~ q(x_{t-1} | x_t, x̂_0) with the posterior variance."""

    name = "ddpm"

    def __init__(self, schedule: Schedule) -> None:
        self.s = schedule
        self.timesteps = list(range(schedule.timesteps - 1, -1, -1))

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.s  # the step's constants as Python floats (see Schedule on square roots)
        a_bar, a_bar_prev, beta = float(s.alphas_cumprod[t]), float(s.alphas_cumprod_prev[t]), float(s.betas[t])
        x0 = ((x - math.sqrt(1 - a_bar) * eps) / math.sqrt(a_bar)).clamp(-1, 1)  # predicted x_0
        mean = (math.sqrt(a_bar_prev) * beta / (1 - a_bar)) * x0 + (
            math.sqrt(1 - beta) * (1 - a_bar_prev) / (1 - a_bar)
        ) * x
        if t == 0:
            return mean
        variance = beta * (1 - a_bar_prev) / (1 - a_bar)
        return mean + math.sqrt(variance) * torch.randn(x.shape, generator=generator).to(x.device)


class DDIMSampler:
    """DDIM (Song et al. 2021) on `steps` evenly spaced timesteps; η = 0 is deterministic, η = 1 ≈ DDPM."""

    name = "ddim"

    def __init__(self, schedule: Schedule, steps: int = 50, eta: float = 0.0) -> None:
        if not 1 <= steps <= schedule.timesteps:
            raise ValueError(f"DDIM steps must be in [1, {schedule.timesteps}], got {steps}")
        self.s, self.eta = schedule, eta
        stride = schedule.timesteps / steps
        self.timesteps = sorted({int(round(i * stride)) for i in range(steps)}, reverse=True)
        self._prev = dict(zip(self.timesteps, self.timesteps[1:] + [-1], strict=True))

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        a_bar = float(self.s.alphas_cumprod[t])  # Python floats (see Schedule on square roots)
        prev = self._prev[t]
        a_prev = float(self.s.alphas_cumprod[prev]) if prev >= 0 else 1.0
        x0 = ((x - math.sqrt(1 - a_bar) * eps) / math.sqrt(a_bar)).clamp(-1, 1)
        eps = (x - math.sqrt(a_bar) * x0) / math.sqrt(1 - a_bar)  # re-derive ε from the clipped x̂_0
        sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_bar) * (1 - a_bar / a_prev))
        x_prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if self.eta > 0 and prev >= 0:
            x_prev = x_prev + sigma * torch.randn(x.shape, generator=generator).to(x.device)
        return x_prev


def make_sampler(name: str, schedule: Schedule, steps: int = 0, eta: float = 0.0) -> DDPMSampler | DDIMSampler:
    """`ddpm` (all T steps) or `ddim` with `steps` (0 = T) and η."""
    if name == "ddpm":
        return DDPMSampler(schedule)
    if name == "ddim":
        return DDIMSampler(schedule, steps or schedule.timesteps, eta)
    raise ValueError(f"unknown sampler {name!r} (ddpm | ddim)")


@torch.no_grad()
def generate(
    model: nn.Module,
    sampler: DDPMSampler | DDIMSampler,
    n: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    record: Sequence[int] = (),
    callback: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Run the reverse process for `n` images; return x_0 in [-1, 1] (on CPU) and x_t at the `record` steps.

    Noise is drawn on the CPU from `generator`, so a seed gives the same images on any device.
    """
    from tqdm import tqdm

    cfg = model.cfg
    model.eval()
    # 1. Start from pure Gaussian noise x_T.
    x = torch.randn((n, cfg.channels, cfg.image_size, cfg.image_size), generator=generator).to(device)
    trajectory = {}
    steps = tqdm(sampler.timesteps, desc=f"{type(sampler).__name__} {n} images", leave=False, disable=None)
    for i, t in enumerate(steps):
        if t in record:
            trajectory[t] = x.float().cpu()
        # 2. Predict the noise in x_t.
        eps = model(x, torch.full((n,), t, device=device, dtype=torch.long)).float()
        # 3. Let the sampler take one reverse step x_t -> x_{t-1} (or to the next DDIM timestep).
        x = sampler.step(eps, t, x, generator)
        if callback:
            callback(i)
    # 4. x_0, clipped to the data range.
    x0 = x.clamp(-1, 1).float().cpu()
    trajectory[-1] = x0
    return x0, trajectory


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


class EMA:
    """Exponential moving average of a model's weights (the weights that sample)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        d = self.decay if decay is None else decay
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)
