"""The trained ddpm model, as the stages after training use it: load the EMA weights, sample images."""

from __future__ import annotations

import numpy as np
import torch

from stages.common import checkpoint
from stages.common.diffusion import DDIMSampler, DDPMSampler, Schedule, UNet, UNetConfig, generate, to_uint8
from stages.ddpm import config
from stages.ddpm.images import upscale


def load_model(paths: config.Paths, device: torch.device | str = "cpu") -> tuple[UNet, Schedule]:
    """The EMA weights and the schedule they were trained with."""
    saved = checkpoint.load(paths.model, made_by="ddpm-train")
    cfg = saved["config"]
    model = UNet(
        UNetConfig(
            **{
                **cfg,
                "channel_mults": tuple(cfg["channel_mults"]),
                "attention_resolutions": tuple(cfg["attention_resolutions"]),
            }
        )
    )
    model.load_state_dict(saved["ema"])
    return model.to(device).eval(), Schedule(saved["diffusion"]["schedule"], saved["diffusion"]["timesteps"])


def sample_images(
    model: UNet, sampler: DDPMSampler | DDIMSampler, n: int, batch_size: int, seed: int, device: torch.device | str,
    record: tuple[int, ...] = (),
) -> tuple[np.ndarray, dict[int, torch.Tensor]]:  # fmt: skip
    """`n` images (N×64×64×3 uint8) in batches from one seeded generator; the trajectory of the first batch."""
    generator = torch.Generator().manual_seed(seed)
    out, first = [], {}
    for start in range(0, n, batch_size):
        x0, trajectory = generate(
            model, sampler, min(batch_size, n - start), generator, device, record if start == 0 else ()
        )
        out.append(to_uint8(x0).numpy())
        first = first or trajectory
    return upscale(np.concatenate(out)), first
