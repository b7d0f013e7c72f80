"""ddpm-train: a DDPM noise predictor (U-Net) trained from scratch on the prepared images.

The simple DDPM loss ‖ε − ε_θ(x_t, t)‖² (stages/common/diffusion.py), AdamW with
linear warmup, gradient clipping, an EMA of the weights (the EMA weights are the
output), optional horizontal flips, bf16 autocast on GPU. Checkpoints every
`checkpoint_every` steps in a scratch folder keyed by the params and inputs; an
interrupted run resumes from the newest one and ends with the same weights.
`max_minutes` stops training at the first loss row past the budget (the steps,
not the clock, lead the schedule); `snapshot_every` keeps the EMA weights along
the way (models/ddpm/snapshots.pt), which ddpm-evaluate turns into FID over time.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from tqdm import tqdm

from stages.common import checkpoint, distributed, runtime
from stages.common.cli import main
from stages.common.diffusion import EMA, Schedule, UNet
from stages.common.io import DataError, atomic_path, write_csv, write_json
from stages.common.params import to_dict
from stages.common.plots import line_plot
from stages.common.runtime import setup, write_timings
from stages.common.tracking import stage_dep_hashes, tracked_run
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
    schedule = Schedule(p.diffusion.schedule, p.diffusion.timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (t.warmup_steps + 1)))
    ema = EMA(model, t.ema_decay)
    generator = torch.Generator().manual_seed(p.seed)
    autocast = runtime.autocast(device)

    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    scratch = checkpoint.scratch_dir(paths.checkpoints, run_key)
    history: list[dict] = []
    snapshots: dict[str, list] = {"steps": [], "ema": []}
    snapshot_seconds: list[float] = []  # wall clock, so a timing: timings/ddpm-train.json, not the weights file
    first_step, elapsed, run_id = 1, 0.0, None
    if (saved := checkpoint.resume(scratch, model, optimizer, scheduler)) is not None:
        run_id = saved.get("mlflow_run_id")  # the interrupted run's MLflow run, continued
        ema.shadow = saved["ema"]
        generator.set_state(saved["generator"])
        history, first_step, elapsed = saved["history"], saved["step"] + 1, saved["elapsed"]
        snapshots, snapshot_seconds = saved["snapshots"], saved["snapshot_seconds"]

    n_params = sum(x.numel() for x in model.parameters())
    print(f"{STAGE}: U-Net {n_params:,} parameters, {t.steps} steps of {t.batch_size} on {device}")
    start, window, step = time.time() - elapsed, [], first_step - 1
    with tracked_run(
        config.TASK, STAGE,
        {"seed": p.seed, "diffusion": to_dict(p.diffusion), "model": to_dict(p.model), "train": to_dict(t), "image_size": cfg.image_size},
        common.mlflow and distributed.is_main(), paths.root, run_id=run_id,
    ) as tracker:  # fmt: skip
        model.train()
        for step in tqdm(range(first_step, t.steps + 1), desc="steps", initial=first_step - 1, total=t.steps,
                         leave=False, disable=None):  # fmt: skip
            # A batch: random images, flipped left-right at random when `hflip`.
            x0 = data[torch.randint(0, len(data), (t.batch_size,), generator=generator)]
            if t.hflip:
                flip = torch.rand(t.batch_size, generator=generator) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            with autocast:
                if distributed.world() == 1:
                    loss = schedule.loss(model, x0.to(device), generator)
                else:
                    loss = shard_loss(schedule, net, x0, generator, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            scheduler.step()
            # EMA with a warm-up of its decay, so short runs are not dominated by the random init.
            ema.update(model, min(t.ema_decay, (1 + step) / (10 + step)))
            window.append(loss.item())
            if step % t.log_every == 0 or step == t.steps:
                row = {"step": step, "loss": distributed.all_reduce_mean(float(np.mean(window))),
                       "lr": scheduler.get_last_lr()[0]}  # fmt: skip
                history.append(row)
                window = []
                tracker.log_metrics({"loss": row["loss"], "lr": row["lr"]}, step=step)
                if step % (10 * t.log_every) == 0 or step == t.steps:
                    print(f"step {step} loss {row['loss']:.4f} ({time.time() - start:.0f} s)")
            if t.snapshot_every and step % t.snapshot_every == 0:
                keep_snapshot(snapshots, step, ema.shadow)
                snapshot_seconds.append(round(time.time() - start, 1))
            # every rank checks at the same steps; rank 0's clock decides for all of them
            if (
                t.max_minutes
                and step % t.log_every == 0
                and distributed.broadcast(time.time() - start > 60 * t.max_minutes)
            ):
                print(f"{STAGE}: time budget of {t.max_minutes} min reached after step {step} of {t.steps}")
                break
            if step % t.checkpoint_every == 0 and step < t.steps and distributed.is_main():
                checkpoint.save(scratch, step, model, optimizer, scheduler, ema=ema.shadow,
                                generator=generator.get_state(), history=history, step=step, snapshots=snapshots,
                                snapshot_seconds=snapshot_seconds, elapsed=time.time() - start, mlflow_run_id=tracker.run_id)  # fmt: skip

        seconds = time.time() - start
        if t.snapshot_every and snapshots["steps"][-1:] != [step]:
            keep_snapshot(snapshots, step, ema.shadow)
            snapshot_seconds.append(round(seconds, 1))
        if not distributed.is_main():
            return {}  # rank 0 writes every output
        with atomic_path(paths.model) as tmp:
            torch.save({"config": dataclasses.asdict(cfg), "diffusion": vars(p.diffusion), "ema": ema.shadow}, tmp)
        with atomic_path(paths.snapshots) as tmp:
            torch.save(snapshots, tmp)
        tail = [r["loss"] for r in history[-max(1, len(history) // 10) :]]
        summary = {
            "parameters": n_params,
            "steps": step,
            "image_size": cfg.image_size,
            "final_loss": float(np.mean(tail)),
        }
        write_csv(paths.plots / "train_history.csv", history)
        line_plot(paths.plots / "loss.png", history, "step", ["loss"], "ddpm: noise-prediction loss", "MSE")
        write_json(paths.metrics / "ddpm_train.json", summary)
        timings = {
            "train_seconds": round(seconds, 1),
            "images_per_second": round(step * t.batch_size / max(seconds, 1e-9), 1),
            "snapshot_steps": snapshots["steps"],
            "snapshot_seconds": snapshot_seconds,
        }
        write_timings(paths.timings(STAGE), timings)
        tracker.log_metrics({k: v for k, v in {**summary, **timings}.items() if isinstance(v, (int, float))})
        tracker.log_artifact(paths.plots / "loss.png")
    checkpoint.clear(scratch)
    print(f"{STAGE}: final loss {summary['final_loss']:.4f}, {timings['train_seconds']} s -> {paths.model}")
    return summary


def keep_snapshot(snapshots: dict[str, list], step: int, shadow: dict) -> None:
    snapshots["steps"].append(step)
    snapshots["ema"].append({name: value.clone() for name, value in shadow.items()})


def shard_loss(schedule: Schedule, net: torch.nn.Module, x0: torch.Tensor, generator, device) -> torch.Tensor:
    """`Schedule.loss` on this rank's share of the global batch `x0`: timesteps and noise are drawn for the
    whole batch, as one process draws them, so N processes train on exactly the samples one process does."""
    t = torch.randint(0, schedule.timesteps, (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    part, _ = distributed.shard(torch.arange(len(x0)))  # equal shares: check_batch made N divide the batch
    x0, t, noise = x0[part].to(device), t[part].to(device), noise[part].to(device)
    return torch.nn.functional.mse_loss(net(schedule.q_sample(x0, t, noise), t), noise)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
