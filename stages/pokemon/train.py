"""pokemon-train: a decoder-only Transformer from scratch on next-token prediction over palette indices.

AdamW with linear warmup and cosine decay. After every epoch: dev loss and the
teacher-forced accuracy on the 160 tokens a completion must produce; with
`select_by: classifier`, also the PDR of dev completions. The kept weights are
the best epoch by `select_by` (the course keeps the lowest training loss).
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from tqdm import tqdm

from stages.common import checkpoint, distributed
from stages.common.cli import main
from stages.common.io import atomic_path, write_csv, write_json
from stages.common.params import to_dict
from stages.common.plots import line_plot
from stages.common.runtime import setup, write_timings
from stages.common.tracking import stage_dep_hashes, tracked_run
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
    start, epoch_seconds = time.time(), 0.0
    scheduler = warmup_cosine(optimizer, t.warmup_steps, t.epochs * steps_per_epoch)
    judge = pdr.load(paths.classifier, device) if t.select_by == "classifier" else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    scratch = checkpoint.scratch_dir(paths.checkpoints, run_key)
    history: list[dict] = []
    best = {"score": math.inf, "epoch": 0, "state": None}
    first_epoch, run_id = 1, None
    if (saved := checkpoint.resume(scratch, model, optimizer, scheduler)) is not None:
        history, best, first_epoch = saved["history"], saved["best"], saved["epoch"] + 1
        run_id = saved.get("mlflow_run_id")  # the interrupted run's MLflow run, continued

    n_params = sum(x.numel() for x in model.parameters())
    print(f"pokemon-train: {p.model.arch}, {n_params:,} parameters, {t.epochs} epochs on {device}")
    with tracked_run(
        config.TASK,
        STAGE,
        {"seed": p.seed, "model": to_dict(p.model), "train": to_dict(t)},
        common.mlflow and distributed.is_main(),
        paths.root,
        run_id=run_id,
    ) as tracker:
        for epoch in range(first_epoch, t.epochs + 1):
            over = t.max_minutes and history and time.time() - start + epoch_seconds > 60 * t.max_minutes
            if distributed.broadcast(over):  # rank 0's clock decides for every rank
                print(f"time budget of {t.max_minutes} min reached after epoch {epoch - 1}")
                break
            epoch_start = time.time()
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
                optimizer.zero_grad(set_to_none=True)
                distributed.weighted(loss, weight).backward()
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
                scheduler.step()
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
            row = distributed.broadcast(row)  # rank 0's row: every rank keeps the same epoch
            score = distributed.broadcast(score)
            if score < best["score"]:
                best = {"score": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            epoch_seconds = time.time() - epoch_start
            history.append(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            if distributed.is_main():
                checkpoint.save(scratch, epoch, model, optimizer, scheduler, history=history, best=best,
                                epoch=epoch, mlflow_run_id=tracker.run_id)  # fmt: skip

        if not distributed.is_main():
            return {}  # rank 0 writes every output
        model.load_state_dict(best["state"])
        with atomic_path(paths.model) as tmp:
            model.save_pretrained(tmp)
        summary = {
            "best_epoch": best["epoch"],
            "select_by": t.select_by,
            "parameters": n_params,
            "epochs_run": len(history),
            **{f"best_{k}": v for k, v in history[best["epoch"] - 1].items() if k not in ("epoch", "lr")},
        }
        write_csv(paths.plots / "train_history.csv", history)
        line_plot(
            paths.plots / "loss.png",
            history,
            "epoch",
            ["train_loss", "dev_loss"],
            "pokemon: next-token loss",
            "cross-entropy",
        )
        write_json(paths.metrics / "pokemon_train.json", summary)
        timings = {"train_seconds": round(time.time() - start, 1)}
        write_timings(paths.timings(STAGE), timings)
        tracker.log_metrics({k: v for k, v in {**summary, **timings}.items() if isinstance(v, (int, float))})
        tracker.log_artifact(paths.plots / "loss.png")
    checkpoint.clear(scratch)
    return summary


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine decay to 0 at the last step. Steps alone lead the schedule: a time budget
    (`train.max_minutes`) only stops training between epochs, so two runs of the same params follow the same
    learning rates on any machine, and a slow machine stops earlier on the same curve instead of annealing on
    its own clock."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
