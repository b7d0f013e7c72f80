"""The reverse process started from an observation: the σ ↔ timestep mapping and a shortened DDIM chain.

Kept in this task (not in stages/common/diffusion.py) so that the ddpm stages, which depend on
diffusion.py, are not invalidated; they are general and could move there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from stages.common.diffusion import Schedule, UNet, UNetConfig


def timestep_for_noise_std(schedule: Schedule, std: float) -> int:
    """The 0-based t whose x_t has noise level `std` relative to the signal: sqrt((1 − ᾱ_t)/ᾱ_t) ≈ std.

    An observation y = x_0 + std·ε scaled by sqrt(ᾱ_t) is sqrt(ᾱ_t)·x_0 + sqrt(ᾱ_t)·std·ε, which is
    distributed as x_t exactly when sqrt(ᾱ_t)·std = sqrt(1 − ᾱ_t). The nearest t on a log scale is returned.
    """
    if not std > 0:
        raise ValueError(f"noise std must be > 0, got {std}")
    a = schedule.alphas_cumprod.double()
    log_ratio = 0.5 * ((1 - a) / a).log()  # log sqrt((1 − ᾱ_t)/ᾱ_t), with no float sqrt (see Schedule)
    return int((log_ratio - math.log(std)).abs().argmin())


def partial_timesteps(t0: int, steps: int = 0) -> list[int]:
    """`steps` evenly spaced 0-based timesteps from t0 down to 0 (t0 first, descending); 0 = every one of t0 … 0."""
    if t0 < 0:
        raise ValueError(f"t0 must be >= 0, got {t0}")
    steps = steps or t0 + 1
    if not 1 <= steps <= t0 + 1:
        raise ValueError(f"steps must be in [1, {t0 + 1}] from t0 = {t0}, got {steps}")
    if steps == 1:
        return [t0]
    return sorted({round(t0 * j / (steps - 1)) for j in range(steps)}, reverse=True)


@torch.no_grad()
def reverse_from(
    model: nn.Module,
    schedule: Schedule,
    x: torch.Tensor,
    timesteps: Sequence[int],
    generator: torch.Generator,
    eta: float = 0.0,
    x0_hook: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """DDIM reverse steps from x (taken as x_t at timesteps[0]) through `timesteps` (descending) to x_0.

    The DDIM update of `DDIMSampler`, on any descending timestep list. `x0_hook(x̂_0, t)` may
    replace the predicted x̂_0 at each step before the update (e.g. a pull towards an observation).
    With η = 1 and every timestep this is DDPM's ancestral chain; noise is drawn on the CPU.
    """
    model.eval()
    x = x.clone()
    n, device = len(x), x.device
    for i, t in enumerate(timesteps):
        prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        a_bar = float(schedule.alphas_cumprod[t])  # Python floats: square roots as in DDIMSampler
        a_prev = float(schedule.alphas_cumprod[prev]) if prev >= 0 else 1.0
        eps = model(x, torch.full((n,), t, device=device, dtype=torch.long)).float()
        x0 = ((x - math.sqrt(1 - a_bar) * eps) / math.sqrt(a_bar)).clamp(-1, 1)
        if x0_hook is not None:
            x0 = x0_hook(x0, t).clamp(-1, 1)
        eps = (x - math.sqrt(a_bar) * x0) / math.sqrt(1 - a_bar)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_bar) * (1 - a_bar / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if eta > 0 and prev >= 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(device)
    return x.clamp(-1, 1)


def load_prior(path: Path, device: torch.device | str = "cpu") -> tuple[UNet, Schedule]:
    """The ddpm task's saved U-Net (EMA weights) and the schedule it was trained with."""
    from stages.common import checkpoint
    from stages.common.io import DataError

    saved = checkpoint.load(path, made_by="ddpm-train")
    try:
        cfg = dict(saved["config"])
        cfg["channel_mults"] = tuple(cfg["channel_mults"])
        cfg["attention_resolutions"] = tuple(cfg["attention_resolutions"])
        model = UNet(UNetConfig(**cfg))
        model.load_state_dict(saved["ema"])
        schedule = Schedule(saved["diffusion"]["schedule"], saved["diffusion"]["timesteps"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise DataError(f"{path}: not a model written by ddpm-train ({type(err).__name__}); run it again") from None
    return model.to(device).eval(), schedule
