"""twolayer-train <model>: train `twolayer` or `resnet34` from scratch (one DVC matrix stage per model).

Both get the same data (the prepared mini-ImageNet train split, optionally resized to
`twolayer.train.image_size`), the same augmentation (`twolayer.augment`: reflection-pad random crop,
horizontal flip, label smoothing), the same schedule and budget (`twolayer.train`: AdamW, linear warmup
then cosine decay per step, the same epochs and batch size) and the same seed. Per epoch: train loss and
accuracy (on the augmented batches), validation loss and accuracy; the kept weights are the best epoch by
validation accuracy (ties: the earlier). The two-layer model is checked against the sheet's layer rule
before training. Resumes from per-epoch checkpoints after an interruption.

Writes models/twolayer/<model>.pt, metrics/twolayer_train_<model>.json, timings/twolayer_train_<model>.json,
plots/twolayer/train_<model>.csv and .png.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, schedule
from stages.common.cli import main
from stages.common.io import DataError
from stages.common.params import ParamsError, to_dict, unrecorded
from stages.common.runtime import setup, thread_count
from stages.common.tracking import stage_dep_hashes
from stages.mini_imagenet.data import load_classes, load_split, to_tensor
from stages.twolayer import config
from stages.twolayer.images import augment, limit_per_class, predict, resize
from stages.twolayer.model import build, check_layer_rule, hparams, save_model

STAGE = "twolayer-train"


def load_data(p: config.TwolayerParams, paths: config.Paths) -> dict:
    """Train and val arrays at the training size, and the class names."""
    classes = load_classes(paths.data)
    xtr, ytr = load_split(paths.data, "train")
    xva, yva = load_split(paths.data, "val")
    for split, y in (("train", ytr), ("val", yva)):
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{paths.data / (split + '.npz')}: labels outside 0..{len(classes) - 1}")
    xtr, ytr = limit_per_class(xtr, ytr, p.train.max_train_per_class)
    size = p.train.image_size or xtr.shape[1]
    return {"train": (resize(xtr, size), ytr), "val": (resize(xva, size), yva), "classes": classes, "size": size}


def evaluate_split(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[float, float]:
    logits = predict(model, x, device)
    yt = torch.as_tensor(y)
    return F.cross_entropy(logits, yt).item(), (logits.argmax(-1) == yt).float().mean().item()


def run(p: config.TwolayerParams, common: config.CommonParams, paths: config.Paths, name: str = "") -> dict:
    config.validate(p, config.check_model(name))
    t, a = p.train, p.augment
    distributed.check_batch(t.batch_size, "twolayer.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels))
    data = load_data(p, paths)
    (xtr, ytr), (xva, yva), classes, size = data["train"], data["val"], data["classes"], data["size"]
    if len(xtr) == 0 or len(xva) == 0:
        raise DataError(f"{paths.data}: empty train or val split")
    model = build(name, p, len(classes), size)
    layer_count = None
    if name == "twolayer":
        try:
            layer_count = check_layer_rule(model, size)
        except ValueError as err:
            raise ParamsError(f"twolayer.twolayer: {err}") from None
    model = model.to(device)
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    optimizer = torch.optim.AdamW(fit.decay_groups(model, t.weight_decay), lr=t.lr, fused=True)
    steps = math.ceil(len(xtr) / t.batch_size)
    scheduler = schedule.warmup_cosine(optimizer, t.warmup_epochs * steps, t.epochs * steps)

    stage = f"{STAGE}@{name}"
    with unrecorded():  # bookkeeping, not reads
        run_key = {"model": name, "hparams": hparams(name, p), "seed": p.seed, "train": to_dict(t),
                   "augment": to_dict(a), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}  # fmt: skip
        tracked = {"model": name, "hparams": hparams(name, p), "seed": p.seed, "train": to_dict(t),
                   "augment": to_dict(a)}  # fmt: skip
    loop = fit.Loop(stage, config.TASK, checkpoint.scratch_dir(paths.checkpoints / name, run_key), model, optimizer,
                    scheduler, epochs=t.epochs, root=paths.root)  # fmt: skip
    seconds: list[float] = loop.saved["seconds"] if loop.saved else []  # per epoch: the timings sum them

    n_params = sum(q.numel() for q in model.parameters())
    print(f"{stage}: {n_params:,} parameters, {len(xtr)} train / {len(xva)} val images at {size}², "
          f"{len(classes)} classes, {t.epochs} epochs on {device}")  # fmt: skip
    with unrecorded():  # whether to log is bookkeeping: it changes no output
        log = common.mlflow
    with loop.tracking(tracked, log):
        for epoch in loop:
            start = time.time()
            g = torch.Generator().manual_seed(p.seed * 100_003 + epoch)  # the same batches for both models
            order = torch.randperm(len(xtr), generator=g).numpy()
            model.train()
            loss_sum, correct = 0.0, 0
            bar = tqdm(range(0, len(order), t.batch_size), desc=f"{name} epoch {epoch}/{t.epochs}", leave=False,
                       disable=None if distributed.is_main() else True)  # fmt: skip
            for i in bar:
                idx = order[i : i + t.batch_size]
                xb = to_tensor(augment(xtr[idx], a.crop_pad, a.flip, g)).to(device)
                yb = torch.as_tensor(ytr[idx]).to(device)
                part, weight = distributed.shard(torch.arange(len(idx)))  # this rank's share, augmented whole
                xb, yb = xb[part], yb[part]
                logits = net(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=a.label_smoothing)
                loop.step(loss, weight)
                loss_sum += loss.item() * len(yb) * (weight > 0)  # a rank's weight-0 stand-in is not counted
                correct += int((logits.argmax(-1) == yb).sum()) * (weight > 0)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            loss_sum, correct = distributed.all_reduce_sum(loss_sum, correct)
            val_loss, val_acc = evaluate_split(model, xva, yva, device)
            row = {
                "epoch": epoch,
                "train_loss": round(loss_sum / len(xtr), 6),
                "train_accuracy": round(correct / len(xtr), 6),
                "val_loss": round(val_loss, 6),
                "val_accuracy": round(val_acc, 6),
                "lr": scheduler.get_last_lr()[0],
            }
            seconds.append(round(time.time() - start, 2))
            loop.end_epoch(row, -val_acc, seconds=seconds)  # the best epoch: highest validation accuracy

        if not distributed.is_main():
            return {}  # rank 0 writes every output
        loop.restore_best()
        best_accuracy = -loop.best["score"]
        save_model(paths.model(name), name, model.cpu(), hparams(name, p), classes, size)
        last = loop.history[-1]
        summary = {
            "model": name,
            "parameters": n_params,
            "epochs": t.epochs,
            "image_size": size,
            "train_images": int(len(xtr)),
            "best_epoch": loop.best["epoch"],
            "best_val_accuracy": round(best_accuracy, 6),
            "final_train_loss": last["train_loss"],
            "final_train_accuracy": last["train_accuracy"],
            "final_val_accuracy": last["val_accuracy"],
        }
        if layer_count is not None:
            summary["main_layers"], summary["total_layers"] = layer_count["main_layers"], layer_count["total_layers"]
        timings = {"model": name, "train_seconds": round(sum(seconds), 1), "epoch_seconds": seconds,
                   "device": str(device), "threads": torch.get_num_threads()}  # fmt: skip
        loop.finish(
            (paths.train_metrics(name), summary),
            (paths.timings(f"{STAGE}-{name}"), timings),
            csv=paths.history(name),
            plots=[
                (paths.plots / f"train_{name}.png", ["train_accuracy", "val_accuracy"], f"twolayer: {name}", "accuracy")
            ],
        )
    loop.clear()
    print(f"{stage}: best val accuracy {best_accuracy:.4f} at epoch {loop.best['epoch']}, {sum(seconds):.0f} s")
    return summary


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths(), *sys.argv[1:]))
