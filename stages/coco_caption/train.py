"""coco-caption-train@<config>: train one of the course's configurations (a DVC matrix stage).

As the course's run.py: Adam at the configuration's lr, batches of 64 in order (no shuffling), 100 epochs,
seed 42; the loss is logged per iteration and averaged per epoch. Writes models/coco-caption/<config>.pt,
plots/coco-caption/<config>_loss.{png,csv} and metrics/coco-caption_train_<config>.json.

Checkpoints every epoch (model, optimizer, torch RNG for dropout) in a scratch folder keyed by the params and
inputs; an interrupted run resumes from the newest one, continues its MLflow run and ends with the same
weights as an uninterrupted one. The outputs are written only once every epoch has run.

    python -m stages.coco_caption.train h4_l6_lr1e-3
"""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from stages.coco_caption import config
from stages.coco_caption.data import load_prepared
from stages.coco_caption.model import CaptioningTransformer, save_model, temporal_softmax_loss
from stages.common import checkpoint, distributed, fit
from stages.common.cli import main
from stages.common.params import ParamsError, to_dict
from stages.common.runtime import setup, thread_count
from stages.common.tracking import stage_dep_hashes

STAGE = "coco-caption-train"


def run(p: config.CocoCaptionParams, common: config.CommonParams, paths: config.Paths, name: str) -> dict:
    c, m = p.config(name), p.model
    distributed.check_batch(p.train.batch_size, "coco-caption.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels))
    arrays, meta = load_prepared(paths.prepared)
    feats = torch.as_tensor(arrays["train_features"], dtype=torch.float32)
    caps = torch.as_tensor(arrays["train_captions"], dtype=torch.long)
    if caps.shape[1] - 1 > m.max_length:
        raise ParamsError(f"captions are {caps.shape[1]} long; coco-caption.model.max_length is {m.max_length}")
    model = CaptioningTransformer(
        len(meta["idx_to_word"]), feats.shape[1], m.embed_dim, c.num_heads, c.num_layers,
        m.ff_dim, m.dropout, m.max_length, m.activation,
    ).to(device)  # fmt: skip
    net = distributed.wrap(model)  # trains; `model` (same weights) is saved
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, fused=True)
    stage = f"{STAGE}@{name}"
    used = {"seed": p.seed, "model": to_dict(m), "train": to_dict(p.train), "config": to_dict(c)}
    run_key = {"params": used, "device": str(device), "deps": stage_dep_hashes(stage, paths.root)}
    scratch = checkpoint.scratch_dir(paths.checkpoints / name, run_key)
    scheduler = None  # the course's constant learning rate
    loop = fit.Loop(stage, config.TASK, scratch, model, optimizer, scheduler, epochs=p.train.epochs, root=paths.root)
    tracked = {"config": name, "seed": p.seed, "model": to_dict(m), "train": to_dict(p.train), **to_dict(c)}
    with loop.tracking(tracked, common.mlflow):
        for epoch in loop:
            model.train()
            losses = []
            for i in tqdm(range(0, len(caps), p.train.batch_size), desc=f"epoch {epoch}", leave=False, disable=None):
                f, weight = distributed.shard(feats[i : i + p.train.batch_size])  # this rank's share
                x, _ = distributed.shard(caps[i : i + p.train.batch_size])
                f, x = f.to(device), x.to(device)
                loss = temporal_softmax_loss(net(f, x[:, :-1]), x[:, 1:])
                loop.step(loss, weight)
                losses.append(loss.item() * weight)  # summed over ranks, / world: the global batch's loss
            losses = [v / distributed.world() for v in distributed.all_reduce_sum(*losses)]
            row = {
                "epoch": epoch,
                "train_loss": round(sum(losses) / len(losses), 6),
                "last_batch_loss": round(losses[-1], 6),
            }
            loop.end_epoch(row)  # the last epoch is kept: the course reports the final training loss
        if not distributed.is_main():
            return {}  # rank 0 writes every output
        last = loop.history[-1]
        target = config.TARGET_LOSS.get(name)
        summary = {
            "config": name,
            **vars(c),
            "epochs": p.train.epochs,
            "final_train_loss": last["train_loss"],
            "final_batch_loss": last["last_batch_loss"],
            "course_target_loss": target,
            "meets_target": None if target is None else bool(last["train_loss"] <= target),
            "parameters": sum(q.numel() for q in model.parameters()),
        }
        timings = {"train_seconds": round(loop.seconds, 1)}
        loop.finish(
            (paths.train_metrics(name), summary),
            (paths.timings(f"coco-caption-train-{name}"), timings),
            csv=paths.plots / f"{name}_loss.csv",
            plots=[(paths.plots / f"{name}_loss.png", ["train_loss"], f"coco-caption {name}", "loss")],
        )
        save_model(model, paths.model(name))  # last: only a complete run replaces the weights
    loop.clear()
    print(f"coco-caption-train {name}: final loss {summary['final_train_loss']:.4f} in {timings['train_seconds']} s")
    return summary


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths(), *sys.argv[1:]))
