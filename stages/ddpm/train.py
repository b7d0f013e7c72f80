"""ddpm-train: a DDPM noise predictor (U-Net) trained from scratch on the prepared images.

The simple DDPM loss ‖ε − ε_θ(x_t, t)‖² (stages/common/diffusion.py), AdamW with linear warmup then a constant
learning rate (stages/common/schedule.py), gradient clipping, an EMA of the weights (the EMA weights are the
output), optional horizontal flips, bf16 autocast on GPU. The shared loop (stages/common/fit.py) carries the
scaffolding: one of its epochs is one loss row of `log_every` steps; it checkpoints every `checkpoint_every`
steps (rounded to rows) in a scratch folder keyed by the params and inputs, an interrupted run resumes from the
newest checkpoint and ends with the same weights, and `max_minutes` stops training before a row that would end
past the budget (the steps, not the clock, lead the schedule). `snapshot_every` keeps the EMA weights along the
way (models/ddpm/snapshots.pt), which ddpm-evaluate turns into FID over time.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, runtime, schedule
from stages.common.cli import main
from stages.common.diffusion import EMA, Schedule, UNet
from stages.common.io import DataError, atomic_path
from stages.common.params import to_dict
from stages.common.runtime import setup
from stages.common.tracking import stage_dep_hashes
from stages.ddpm import config
from stages.ddpm.images import load_prepared

STAGE = "ddpm-train"


def run(p: config.DdpmParams, common: config.CommonParams, paths: config.Paths) -> dict:
    t = p.train
    distributed.check_batch(t.batch_size, "ddpm.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, common.threads, common.kernels))
    data = torch.from_numpy(load_prepared(paths.prepared))
    cfg = config.unet_config(p)
    if data.shape[-1] != cfg.image_size:
        raise DataError(
            f"{paths.prepared}: images are {data.shape[-1]} px but ddpm.prepare.image_size is {cfg.image_size}; "
            "run ddpm-prepare again"
        )
    model = UNet(cfg).to(device)
    net = distributed.wrap(model)  # trains; `model` (same weights) feeds the EMA and is saved
    diffusion = Schedule(p.diffusion.schedule, p.diffusion.timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
    scheduler = schedule.warmup_cosine(optimizer, t.warmup_steps, t.steps, decay=False)
    ema = EMA(model, t.ema_decay)
    generator = torch.Generator().manual_seed(p.seed)
    autocast = runtime.autocast(device)

    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    loop = fit.Loop(STAGE, config.TASK, checkpoint.scratch_dir(paths.checkpoints, run_key), model, optimizer,
                    scheduler, epochs=math.ceil(t.steps / t.log_every), root=paths.root, max_minutes=t.max_minutes,
                    checkpoint_every=t.checkpoint_every and max(1, round(t.checkpoint_every / t.log_every)))  # fmt: skip
    snapshots: dict[str, list] = {"steps": [], "ema": []}
    snapshot_seconds: list[float] = []  # wall clock, so a timing: timings/ddpm-train.json, not the weights file
    if loop.saved is not None:
        ema.shadow = loop.saved["ema"]
        generator.set_state(loop.saved["generator"])
        snapshots, snapshot_seconds = loop.saved["snapshots"], loop.saved["snapshot_seconds"]

    n_params = sum(x.numel() for x in model.parameters())
    print(f"{STAGE}: U-Net {n_params:,} parameters, {t.steps} steps of {t.batch_size} on {device}")
    tracked = {"seed": p.seed, "diffusion": to_dict(p.diffusion), "model": to_dict(p.model), "train": to_dict(t),
               "image_size": cfg.image_size}  # fmt: skip
    step = min((loop.first - 1) * t.log_every, t.steps)  # the last step done
    with loop.tracking(tracked, common.mlflow):
        model.train()
        bar = tqdm(desc="steps", initial=step, total=t.steps, leave=False, disable=None)
        for epoch in loop:  # one loss row of log_every steps
            losses = []
            for step in range((epoch - 1) * t.log_every + 1, min(epoch * t.log_every, t.steps) + 1):
                # A batch: random images, flipped left-right at random when `hflip`.
                x0 = data[torch.randint(0, len(data), (t.batch_size,), generator=generator)]
                if t.hflip:
                    flip = torch.rand(t.batch_size, generator=generator) < 0.5
                    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
                with autocast:
                    if distributed.world() == 1:
                        loss = diffusion.loss(model, x0.to(device), generator)
                    else:
                        loss = shard_loss(diffusion, net, x0, generator, device)
                loop.step(loss, grad_clip=t.grad_clip)
                # EMA with a warm-up of its decay, so short runs are not dominated by the random init.
                ema.update(model, min(t.ema_decay, (1 + step) / (10 + step)))
                losses.append(loss.item())
                if t.snapshot_every and step % t.snapshot_every == 0:
                    keep_snapshot(snapshots, step, ema.shadow)
                    snapshot_seconds.append(round(loop.seconds, 1))
                bar.update()
            row = {"epoch": epoch, "step": step, "loss": distributed.all_reduce_mean(float(np.mean(losses))),
                   "lr": scheduler.get_last_lr()[0]}  # fmt: skip
            loop.end_epoch(row, ema=ema.shadow, generator=generator.get_state(), snapshots=snapshots,
                           snapshot_seconds=snapshot_seconds)  # fmt: skip
        bar.close()
        seconds = loop.seconds
        if t.snapshot_every and snapshots["steps"][-1:] != [step]:
            keep_snapshot(snapshots, step, ema.shadow)
            snapshot_seconds.append(round(seconds, 1))
        if not distributed.is_main():
            return {}  # rank 0 writes every output
        with atomic_path(paths.model) as tmp:
            torch.save({"config": dataclasses.asdict(cfg), "diffusion": vars(p.diffusion), "ema": ema.shadow}, tmp)
        with atomic_path(paths.snapshots) as tmp:
            torch.save(snapshots, tmp)
        history = [{k: v for k, v in row.items() if k != "epoch"} for row in loop.history]
        tail = [r["loss"] for r in history[-max(1, len(history) // 10) :]]
        summary = {
            "parameters": n_params,
            "steps": step,
            "image_size": cfg.image_size,
            "final_loss": float(np.mean(tail)),
        }
        timings = {
            "train_seconds": round(seconds, 1),
            "images_per_second": round(step * t.batch_size / max(seconds, 1e-9), 1),
            "snapshot_steps": snapshots["steps"],
            "snapshot_seconds": snapshot_seconds,
        }
        loop.finish((paths.metrics / "ddpm_train.json", summary), (paths.timings(STAGE), timings),
                    csv=paths.plots / "train_history.csv", rows=history, x="step",
                    plots=[(paths.plots / "loss.png", ["loss"], "ddpm: noise-prediction loss", "MSE")])  # fmt: skip
    loop.clear()
    print(f"{STAGE}: final loss {summary['final_loss']:.4f}, {timings['train_seconds']} s -> {paths.model}")
    return summary


def keep_snapshot(snapshots: dict[str, list], step: int, shadow: dict) -> None:
    snapshots["steps"].append(step)
    snapshots["ema"].append({name: value.clone() for name, value in shadow.items()})


def shard_loss(diffusion: Schedule, net: torch.nn.Module, x0: torch.Tensor, generator, device) -> torch.Tensor:
    """`Schedule.loss` on this rank's share of the global batch `x0`: timesteps and noise are drawn for the
    whole batch, as one process draws them, so N processes train on exactly the samples one process does."""
    t = torch.randint(0, diffusion.timesteps, (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    part, _ = distributed.shard(torch.arange(len(x0)))  # equal shares: check_batch made N divide the batch
    x0, t, noise = x0[part].to(device), t[part].to(device), noise[part].to(device)
    return torch.nn.functional.mse_loss(net(diffusion.q_sample(x0, t, noise), t), noise)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
