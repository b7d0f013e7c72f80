"""pokemon-train: a decoder-only Transformer from scratch on next-token prediction over palette indices.

AdamW with linear warmup and cosine decay. After every epoch: dev loss and the
teacher-forced accuracy on the 160 tokens a completion must produce; with
`select_by: classifier`, also the PDR of dev completions. The kept weights are
the best epoch by `select_by` (the course keeps the lowest training loss).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, runtime, schedule
from stages.common.cli import main
from stages.common.io import atomic_path
from stages.common.params import to_dict
from stages.common.runtime import setup
from stages.common.tracking import stage_dep_hashes
from stages.pokemon import config, pdr
from stages.pokemon.data import PREFIX_LEN, load_prepared, mirror
from stages.pokemon.model import build_model, complete, next_token_loss

STAGE = "pokemon-train"


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> dict:
    t = p.train
    distributed.check_batch(t.batch_size, "pokemon.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, common.threads, common.kernels))
    data = load_prepared(paths.prepared)
    train_set = torch.as_tensor(data["train"])
    mirrored = torch.as_tensor(mirror(data["train"]).copy())  # augmentation, drawn per sprite with t.mirror
    dev_set = torch.as_tensor(data["dev"])
    model = build_model(p.model, len(data["palette"])).to(device)
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
    steps_per_epoch = math.ceil(len(train_set) / t.batch_size)
    scheduler = schedule.warmup_cosine(optimizer, t.warmup_steps, t.epochs * steps_per_epoch)
    judge = pdr.load(paths.classifier, device) if t.select_by == "classifier" else None
    autocast = runtime.autocast(device)
    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    loop = fit.Loop(STAGE, config.TASK, checkpoint.scratch_dir(paths.checkpoints, run_key), model, optimizer,
                    scheduler, epochs=t.epochs, root=paths.root, max_minutes=t.max_minutes)  # fmt: skip

    n_params = sum(x.numel() for x in model.parameters())
    print(f"pokemon-train: {p.model.arch}, {n_params:,} parameters, {t.epochs} epochs on {device}")
    with loop.tracking({"seed": p.seed, "model": to_dict(p.model), "train": to_dict(t)}, common.mlflow):
        for epoch in loop:
            model.train()
            draw = torch.Generator().manual_seed(p.seed + epoch)
            order = torch.randperm(len(train_set), generator=draw)
            flipped = torch.rand(len(train_set), generator=draw) < t.mirror  # by sprite: one draw for all ranks
            losses = []
            for batch in tqdm(order.split(t.batch_size), desc=f"epoch {epoch}", leave=False, disable=None):
                batch, weight = distributed.shard(batch)  # this rank's share of the global batch
                with autocast:
                    tokens = torch.where(flipped[batch, None], mirrored[batch], train_set[batch])  # (B, 400)
                    loss = next_token_loss(net, tokens.to(device))
                loop.step(loss, weight, t.grad_clip)
                losses.append(loss.item() * weight)  # summed over ranks, / world: the global batch's loss
            losses = [v / distributed.world() for v in distributed.all_reduce_sum(*losses)]
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **evaluate_dev(model, dev_set, device)}
            row["lr"] = scheduler.get_last_lr()[0]
            if judge is not None:
                completions = complete(
                    model, data["dev"][:, :PREFIX_LEN], config.PredictParams(strategy="greedy"), device
                )
                row["dev_pdr"] = pdr.detection_rate(*judge, completions, data["palette"])
            score = {"train_loss": row["train_loss"], "dev_loss": row["dev_loss"]}.get(t.select_by)
            if score is None:  # classifier: highest PDR, ties broken by dev loss
                score = -row["dev_pdr"] + 1e-6 * row["dev_loss"]
            loop.end_epoch(row, score)

        if not distributed.is_main():
            return {}  # rank 0 writes every output
        best = loop.restore_best()
        with atomic_path(paths.model) as tmp:
            model.save_pretrained(tmp)
        summary = {
            "best_epoch": loop.best["epoch"],
            "select_by": t.select_by,
            "parameters": n_params,
            "epochs_run": len(loop.history),
            **{f"best_{k}": v for k, v in best.items() if k not in ("epoch", "lr")},
        }
        loop.finish(
            (paths.metrics / "pokemon_train.json", summary),
            (paths.timings(STAGE), {"train_seconds": round(loop.seconds, 1)}),
            csv=paths.plots / "train_history.csv",
            plots=[(paths.plots / "loss.png", ["train_loss", "dev_loss"], "pokemon: next-token loss", "cross-entropy")],
        )
    loop.clear()
    return summary


@torch.inference_mode()
def evaluate_dev(model: torch.nn.Module, dev: torch.Tensor, device: torch.device, batch_size: int = 40) -> dict:
    """Dev next-token loss over whole images, and teacher-forced accuracy on the completed part."""
    model.eval()
    losses, accuracies = [], []
    for batch in dev.split(batch_size):
        batch = batch.to(device)
        logits = model(input_ids=batch[:, :-1]).logits  # (B, 399, V)
        targets = batch[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets)
        tail = slice(PREFIX_LEN - 1, None)  # targets at positions 240..399
        completion_accuracy = (logits[:, tail].argmax(-1) == targets[:, tail]).float().mean()
        losses.append(loss.item() * len(batch))
        accuracies.append(completion_accuracy.item() * len(batch))
    return {"dev_loss": sum(losses) / len(dev), "dev_tail_accuracy": sum(accuracies) / len(dev)}


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
