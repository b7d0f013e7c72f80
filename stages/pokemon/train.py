"""pokemon-train: a decoder-only Transformer from scratch on next-token prediction over palette indices.

AdamW with linear warmup and cosine decay. After every epoch: dev loss and the
teacher-forced accuracy on the 160 tokens a completion must produce; with
`select_by: classifier`, also the PDR of dev completions. The kept weights are
the best epoch by `select_by` (the course keeps the lowest training loss).

With `members` M > 1 it trains M such models one after another, member m from seed + 1000 m, each with its own
warmup and cosine; a time budget (`max_minutes`) is shared: a member gets what the ones before it left, and the
next one starts only if it would fit, taking as long as the one before it (a member is trained whole or not at all,
unless the machine slows down mid-member). Completions then sample from the members' mean next-token distribution
(`model.complete`).
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
from stages.common.plots import line_plot
from stages.common.runtime import seed_everything, setup
from stages.common.tracking import stage_dep_hashes
from stages.pokemon import config, pdr
from stages.pokemon.data import PREFIX_LEN, load_prepared, mirror
from stages.pokemon.model import build_model, complete, next_token_loss

STAGE = "pokemon-train"


MEMBER_SEED_STRIDE = 1000  # member m trains with seed + 1000 m: runs of seeds 0..999 share no member


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> dict:
    t = p.train
    distributed.check_batch(t.batch_size, "pokemon.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, common.threads, common.kernels))
    data = load_prepared(paths.prepared)
    judge = pdr.load(paths.classifier, device) if t.select_by == "classifier" else None
    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    trained, loops, seconds, summary = [], [], [], {}  # the members' models, loops and training seconds
    for member in range(t.members):  # one after another, each in its own MLflow run
        seed = p.seed + MEMBER_SEED_STRIDE * member
        seed_everything(seed)  # member 0: the run's seed, as `setup` set it
        model = build_model(p.model, len(data["palette"])).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
        steps = t.epochs * math.ceil(len(data["train"]) / t.batch_size)
        scheduler = schedule.warmup_cosine(optimizer, t.warmup_steps, steps)
        scratch = checkpoint.scratch_dir(paths.checkpoints, {**run_key, "member": member})
        budget = t.max_minutes - sum(seconds) / 60 if t.max_minutes else 0.0  # what the members before left (> 0)
        loop = fit.Loop(STAGE, config.TASK, scratch, model, optimizer, scheduler, epochs=t.epochs, root=paths.root,
                        max_minutes=budget)  # fmt: skip
        params = {"seed": seed, "member": member, "model": to_dict(p.model), "train": to_dict(t)}
        with loop.tracking(params, common.mlflow):
            train_member(p.train, model, loop, data, judge, seed, device, member)
            trained.append(model)
            loops.append(loop)
            seconds.append(loop.seconds)  # now: a loop's clock runs on while later members train
            fits = not t.max_minutes or sum(seconds) + seconds[-1] <= 60 * t.max_minutes  # as long as this one
            last = member == t.members - 1 or not distributed.broadcast(fits)  # rank 0's clock decides
            if last and member < t.members - 1:
                print(f"time budget of {t.max_minutes} min: another member would not fit after "
                      f"{sum(seconds) / 60:.1f} min; {len(trained)} of {t.members} members trained")  # fmt: skip
            if last and distributed.is_main():  # rank 0 writes every output
                summary = finish(p, paths, trained, loops, sum(seconds))
        if last:
            break
    if distributed.is_main():
        for loop in loops:
            loop.clear()
    return summary


def train_member(t: config.TrainParams, model, loop: fit.Loop, data: dict, judge, seed: int, device, member: int):
    """One model of the ensemble, from its own seed, through the epochs `loop` gives (to `t.epochs` or the time
    budget); leaves the best epoch's weights in `model`."""
    train_set = torch.as_tensor(data["train"])
    mirrored = torch.as_tensor(mirror(data["train"]).copy())  # augmentation, drawn per sprite with t.mirror
    dev_set = torch.as_tensor(data["dev"])
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    autocast = runtime.autocast(device)
    n_params = sum(x.numel() for x in model.parameters())
    print(f"pokemon-train: member {member}, {n_params:,} parameters, {t.epochs} epochs on {device}")
    for epoch in loop:
        model.train()
        draw = torch.Generator().manual_seed(seed + epoch)
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
        row["lr"] = loop.scheduler.get_last_lr()[0]
        if judge is not None:
            greedy = config.PredictParams(strategy="greedy")
            row["dev_pdr"] = pdr.detection_rate(*judge, complete([model], data["dev"][:, :PREFIX_LEN], greedy, device),
                                                data["palette"])  # fmt: skip
        score = {"train_loss": row["train_loss"], "dev_loss": row["dev_loss"]}.get(t.select_by)
        if score is None:  # classifier: highest PDR, ties broken by dev loss
            score = -row["dev_pdr"] + 1e-6 * row["dev_loss"]
        loop.end_epoch(row, score)
    loop.restore_best()


def finish(p: config.PokemonParams, paths: config.Paths, trained: list, loops: list[fit.Loop], seconds: float) -> dict:
    """The weights (one model at `paths.model`; members in `paths.model`/member-m), the summary, the history of
    every member's epochs and the loss plot (one line per member and loss), in the last member's MLflow run."""
    t, one = p.train, p.train.members == 1
    summaries = [member_summary(loop) for loop in loops]
    summary = {"select_by": t.select_by, "parameters": sum(x.numel() for x in trained[0].parameters())}
    if one:
        summary.update(summaries[0])
    else:
        summary.update({"members": len(trained), **{f"member-{m}": s for m, s in enumerate(summaries)}})
    summary["stopped_by_budget"] = len(trained) < t.members or any(s["epochs_run"] < t.epochs for s in summaries)
    with atomic_path(paths.model) as tmp:
        for m, model in enumerate(trained):
            model.save_pretrained(tmp if one else tmp / f"member-{m}")
    rows = [row if one else {"member": m, **row} for m, loop in enumerate(loops) for row in loop.history]
    losses = ("train_loss", "dev_loss")
    column = {(k, m): k if one else f"{k} {m}" for m in range(len(loops)) for k in losses}
    wide: dict[int, dict] = {}  # the plot's rows: one per epoch, one column per member and loss
    for m, loop in enumerate(loops):
        for row in loop.history:
            wide.setdefault(row["epoch"], {"epoch": row["epoch"]}).update({column[k, m]: row[k] for k in losses})
    columns = list(column.values())
    line_plot(
        paths.plots / "loss.png", list(wide.values()), "epoch", columns, "pokemon: next-token loss", "cross-entropy"
    )
    loops[-1].tracker.log_artifact(paths.plots / "loss.png")
    loops[-1].finish(
        (paths.metrics / "pokemon_train.json", summary),
        (paths.timings(STAGE), {"train_seconds": round(seconds, 1)}),
        csv=paths.plots / "train_history.csv",
        rows=rows,
    )
    return summary


def member_summary(loop: fit.Loop) -> dict:
    best = loop.history[loop.best["epoch"] - 1]
    return {
        "best_epoch": loop.best["epoch"],
        "epochs_run": len(loop.history),
        **{f"best_{k}": v for k, v in best.items() if k not in ("epoch", "lr")},
    }


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
