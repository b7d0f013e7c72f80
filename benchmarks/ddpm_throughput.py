"""Training throughput of our U-Net against diffusers' UNet2DModel of a similar size, and sampling cost.

    python benchmarks/ddpm_throughput.py [--device auto] [--size 32] [--batch 32] [--steps 5] [--full-ddpm]

Prints training images/s for each model (the diffusers row is skipped, with a
message, when diffusers is not installed), then seconds per sampled image for
DDPM-1000 (all T steps) and DDIM-50 with our U-Net. Without --full-ddpm, the
DDPM-1000 time is measured over its first 100 steps and scaled by 10 (every
step costs the same: one forward pass).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.common.diffusion import DDIMSampler, DDPMSampler, Schedule, UNet, UNetConfig, generate  # noqa: E402
from stages.common.runtime import resolve_device  # noqa: E402

CONFIGS = {  # name: (ours, diffusers block_out_channels, diffusers attention-level flags)
    "small": (
        dict(base_channels=32, channel_mults=(1, 2, 2), attention_resolutions=(8,)),
        (32, 64, 64),
        (False, False, True),
    ),
    "medium": (
        dict(base_channels=64, channel_mults=(1, 2, 2), attention_resolutions=(8,)),
        (64, 128, 128),
        (False, False, True),
    ),
}


def diffusers_unet(size: int, channels: tuple[int, ...], attention: tuple[bool, ...]):
    from diffusers import UNet2DModel

    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
    model = UNet2DModel(
        sample_size=size, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=channels,
        down_block_types=down, up_block_types=up, norm_num_groups=8,
    )  # fmt: skip
    return lambda x, t: model(x, t).sample, model


def train_rate(forward, params, size: int, batch: int, steps: int, device) -> float:
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    schedule = Schedule("linear", 1000)

    def step() -> None:
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(x)
        loss = torch.nn.functional.mse_loss(forward(schedule.q_sample(x, t, noise), t), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sample-images", type=int, default=8)
    parser.add_argument("--full-ddpm", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.size}×{args.size}, batch {args.batch}")
    print(f"{'model':28} {'params':>10} {'train img/s':>12}")
    for name, (ours_cfg, channels, attention) in CONFIGS.items():
        torch.manual_seed(0)
        ours = UNet(UNetConfig(image_size=args.size, **ours_cfg)).to(device)
        n = sum(p.numel() for p in ours.parameters())
        rate = train_rate(ours, ours.parameters(), args.size, args.batch, args.steps, device)
        print(f"{'ours ' + name:28} {n:>10,} {rate:>12.1f}")
        try:
            forward, model = diffusers_unet(args.size, channels, attention)
        except ImportError:
            print(
                f"{'diffusers UNet2DModel ' + name:28} {'skipped: diffusers is not installed (pip install diffusers)':>24}"
            )
            continue
        model.to(device)
        n = sum(p.numel() for p in model.parameters())
        rate = train_rate(forward, model.parameters(), args.size, args.batch, args.steps, device)
        print(f"{'diffusers UNet2DModel ' + name:28} {n:>10,} {rate:>12.1f}")

    torch.manual_seed(0)
    model = UNet(UNetConfig(image_size=args.size, **CONFIGS["small"][0])).to(device).eval()
    schedule = Schedule("linear", 1000)
    k = args.sample_images
    print(f"\nsampling with ours small, {k} images per batch:")
    for label, sampler, scale in (
        ("DDPM-1000", DDPMSampler(schedule), 1 if args.full_ddpm else 10),
        ("DDIM-50", DDIMSampler(schedule, 50), 1),
    ):
        if scale > 1:
            sampler.timesteps = sampler.timesteps[: len(sampler.timesteps) // scale]
        start = time.perf_counter()
        generate(model, sampler, k, torch.Generator().manual_seed(0), device)
        seconds = (time.perf_counter() - start) * scale
        note = f" (first {len(sampler.timesteps)} steps measured, ×{scale})" if scale > 1 else ""
        print(f"  {label:10} {seconds / k:8.3f} s/image{note}")


if __name__ == "__main__":
    main()
