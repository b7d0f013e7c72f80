"""mygo-train <name>: train ensemble member `mygo.models.<name>` (one DVC matrix stage per member).

Augmentation from `mygo.train.augment` (torchvision.transforms.v2, per image),
MixUp/CutMix per batch, label smoothing, AdamW or SGD, linear warmup then
cosine decay per step, early stopping on validation accuracy (`patience`).
The kept weights are the best epoch by validation accuracy (ties: lower
validation loss). On GPU: channels_last and bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, runtime, schedule
from stages.common.cli import main
from stages.common.cnn import count_parameters
from stages.common.runtime import setup
from stages.common.tracking import stage_dep_hashes
from stages.mygo import augment, config
from stages.mygo.data import load_prepared
from stages.mygo.model import build, save

STAGE = "mygo-train"


def run(p: config.MygoParams, common: config.CommonParams, paths: config.Paths, name: str) -> dict:
    m, t = p.model(name), p.train
    distributed.check_batch(t.batch_size, "mygo.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(m.seed, common.device, common.threads, common.kernels))
    data = load_prepared(paths.prepared)
    classes, size = data["classes"], data["index"]["image_size"]
    train_x = torch.from_numpy(data["train_images"]).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, S, S)
    train_y = torch.from_numpy(data["train_labels"])
    valid_y = torch.from_numpy(data["valid_labels"])
    mean, std = channel_stats(data["train_images"])
    transform = augment.train_transform(t.augment, size, mean, std)
    valid_x = augment.eval_transform(size, mean, std)(torch.from_numpy(data["valid_images"]).permute(0, 3, 1, 2))
    mix = augment.batch_mix(len(classes), t.mixup_alpha, t.cutmix_alpha)
    memory_format = runtime.memory_format(device, t.channels_last)

    model = build(m, len(classes)).to(device, memory_format=memory_format)
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    optimizer = make_optimizer(model, t)
    steps_per_epoch = math.ceil(len(train_x) / t.batch_size)
    scheduler = schedule.warmup_cosine(
        optimizer, t.warmup_epochs * steps_per_epoch, t.epochs * steps_per_epoch, decay=t.schedule != "constant"
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    autocast = runtime.autocast(device, t.bf16)

    stage = f"{STAGE}@{name}"
    run_key = {"model": dataclasses.asdict(m), "train": dataclasses.asdict(t), "device": str(device),
               "deps": stage_dep_hashes(STAGE, paths.root)}  # fmt: skip
    loop = fit.Loop(stage, config.TASK, checkpoint.scratch_dir(paths.checkpoints / name, run_key), model, optimizer,
                    scheduler, epochs=t.epochs, root=paths.root, patience=t.patience)  # fmt: skip

    n_params = count_parameters(model)
    print(
        f"{stage}: {m.arch}, {n_params:,} parameters, {len(train_x)} train images {size}², up to {t.epochs} epochs on {device}"
    )
    params = {"model": dataclasses.asdict(m), "train": dataclasses.asdict(t), "image_size": size}
    with loop.tracking(params, common.mlflow):
        for epoch in loop:
            model.train()
            order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(m.seed * 10007 + epoch))
            losses, correct = [], 0
            for idx in tqdm(order.split(t.batch_size), desc=f"epoch {epoch}", leave=False, disable=None):
                idx, weight = distributed.shard(idx)
                x = torch.stack([transform(train_x[i]) for i in idx.tolist()])
                y = train_y[idx]
                target = y
                if mix is not None and len(idx) > 1:
                    x, target = mix(x, y)
                x = x.to(device, memory_format=memory_format)
                with autocast:
                    logits = net(x)
                loss = loss_fn(logits.float(), target.to(device))
                loop.step(loss, weight)
                losses.append(loss.item() * len(idx) * (weight > 0))  # a rank's weight-0 stand-in is not counted
                correct += int((logits.argmax(1).cpu() == y).sum()) * (weight > 0)
            loss_total, correct = distributed.all_reduce_sum(sum(losses), correct)
            valid_loss, valid_accuracy = evaluate(model, valid_x, valid_y, device, memory_format, autocast)
            row = {
                "epoch": epoch,
                "train_loss": loss_total / len(train_x),
                "train_accuracy": correct / len(train_x),
                "valid_loss": valid_loss,
                "valid_accuracy": valid_accuracy,
                "lr": scheduler.get_last_lr()[0],
            }
            loop.end_epoch(row, (-valid_accuracy, valid_loss))  # best: highest accuracy, then lowest loss

        if not distributed.is_main():
            return {}  # rank 0 writes every output
        best = loop.restore_best()
        save(paths.model(name), model, m, classes, size, mean, std)
        summary = {
            "arch": m.arch,
            "parameters": n_params,
            "epochs_run": len(loop.history),
            "best_epoch": best["epoch"],
            "best_valid_accuracy": best["valid_accuracy"],
            "best_valid_loss": best["valid_loss"],
            "final_train_accuracy": loop.history[-1]["train_accuracy"],
        }
        loop.finish(
            (paths.metrics / f"mygo_train_{name}.json", summary),
            (paths.timings(f"{STAGE}-{name}"), {"train_seconds": round(loop.seconds, 1)}),
            csv=paths.plots / f"train_{name}.csv",
            plots=[
                (
                    paths.plots / f"train_{name}.png",
                    ["train_accuracy", "valid_accuracy"],
                    f"mygo {name} ({m.arch}): accuracy",
                    "accuracy",
                )
            ],  # fmt: skip
        )
    loop.clear()
    print(f"{stage}: best validation accuracy {summary['best_valid_accuracy']:.4f} at epoch {summary['best_epoch']}")
    return summary


def channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 (N, H, W, 3) images, in [0, 1]."""
    x = images.reshape(-1, 3).astype(np.float64) / 255
    return torch.tensor(x.mean(0), dtype=torch.float32), torch.tensor(x.std(0).clip(1e-3), dtype=torch.float32)


def make_optimizer(model: nn.Module, t: config.TrainParams) -> torch.optim.Optimizer:
    groups = fit.decay_groups(model, t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.momentum > 0)
    return torch.optim.AdamW(groups, lr=t.lr, fused=True)


@torch.inference_mode()
def evaluate(model, x, y, device, memory_format, autocast, batch_size: int = 256) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=False):
        with autocast:
            logits = model(xb.to(device, memory_format=memory_format)).float()
        loss += nn.functional.cross_entropy(logits, yb.to(device), reduction="sum").item()
        correct += int((logits.argmax(1).cpu() == yb).sum())
    return loss / len(y), correct / len(y)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m stages.mygo.train <model name from mygo.ensemble>")
    main(lambda: run(*config.load(), config.Paths(), *sys.argv[1:]))
