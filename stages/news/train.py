"""news-train: the from-scratch Transformer encoder classifier.

AdamW, linear warmup then cosine decay, label smoothing, gradient clipping, early
stopping on validation accuracy (the best epoch's weights are kept). Per-epoch
loss/accuracy go to MLflow and to plots/news/train_history.csv (dvc plots).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, runtime, schedule
from stages.common.cli import main
from stages.common.io import write_csv, write_json
from stages.common.params import ParamsError, to_dict
from stages.common.plots import line_plot
from stages.common.runtime import setup, thread_count, write_timings
from stages.common.tracking import stage_dep_hashes
from stages.news import config
from stages.news.data import load_prepared
from stages.news.model import NewsClassifier, init_embeddings, predict_logits, save_model
from stages.news.text import Tokenizer

STAGE = "news-train"


def run(p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> dict:
    """Train `news.train.members` models (seeds news.seed, news.seed+1, ...) and save them as one model file.

    Member 0 writes the curves; with more than one member the summary adds each member's and the
    ensemble's validation accuracy (the ensemble averages the members' class probabilities)."""
    distributed.check_batch(p.train.batch_size, "news.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    members = [train_member(p, common, paths, k) for k in range(p.train.members)]  # each resumes by itself
    if not distributed.is_main():
        return {}  # rank 0 writes every output
    model, summary, timings, _ = members[0]
    vocab_size, n_classes = model.embed.num_embeddings, model.head.out_features
    if len(members) > 1:
        from stages.news.model import Ensemble

        model = Ensemble([member for member, *_ in members])
        splits, _ = load_prepared(paths.prepared)
        device = next(model.parameters()).device
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=p.train.label_smoothing)
        ensemble = evaluate(model, splits["val"], device, loss_fn, p.predict.batch_size)
        summary = {
            **summary,
            "members": len(members),
            "member_best_val_accuracy": [s["best_val_accuracy"] for _, s, *_ in members],
            "ensemble_val_accuracy": round(ensemble["val_accuracy"], 6),
            "ensemble_val_loss": round(ensemble["val_loss"], 6),
        }
        timings = {"train_seconds": round(sum(t["train_seconds"] for _, _, t, _ in members), 1),
                   "train_samples_per_s": timings["train_samples_per_s"]}  # fmt: skip
    save_model(model, paths.model, vocab_size, n_classes)
    write_json(paths.metrics / "news_train.json", summary)
    write_timings(paths.timings(STAGE), timings)
    for *_, loop in members:  # kept until every member is done: an interrupted ensemble resumes where it was
        loop.clear()
    return summary


def train_member(
    p: config.NewsParams, common: config.CommonParams, paths: config.Paths, member: int = 0
) -> tuple[NewsClassifier, dict, dict, fit.Loop]:
    """One model, seeded with news.seed + member: (the best epoch's model, summary, timings, its loop)."""
    m, t = p.model, p.train
    seed = p.seed + member
    device = distributed.init(setup(seed, common.device, thread_count(p.threads, common.threads), common.kernels))
    splits, meta = load_prepared(paths.prepared)
    if splits["train"]["ids"].shape[1] > m.max_len:
        raise ParamsError(
            f"prepared sequences are {splits['train']['ids'].shape[1]} long; news.model.max_len is {m.max_len}"
        )
    vocab = Tokenizer.load(paths.prepared / "tokenizer.json").vocab
    n_classes = len(meta["classes"])
    model = NewsClassifier(m, len(vocab), n_classes)
    if m.embedding_init != "random":
        from stages.news.embeddings import train_vectors

        tr = splits["train"]
        vectors, found = train_vectors(
            m.embedding_init, tr["ids"], tr["lengths"], vocab, m.d_model, t.embedding_epochs, seed, t.embedding_window
        )
        init_embeddings(model, vectors, found)
        print(f"news-train: {m.embedding_init} vectors for {found.sum()} of {len(vocab)} tokens")
    model.to(device)
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    optimizer = torch.optim.AdamW(param_groups(model, t), lr=t.lr, fused=True)
    train_ids = torch.as_tensor(splits["train"]["ids"], dtype=torch.long)
    train_len = torch.as_tensor(splits["train"]["lengths"], dtype=torch.long)
    train_y = torch.as_tensor(splits["train"]["labels"])
    steps_per_epoch = math.ceil(len(train_ids) / t.batch_size)
    total = t.epochs * steps_per_epoch
    scheduler = schedule.warmup_cosine(optimizer, int(t.warmup_fraction * total), total)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    autocast = runtime.autocast(device)

    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    if member:
        run_key["member"] = member
    ema = weight_average(model, t.ema)  # None, or the exponential moving average of the weights
    scored = model if ema is None else ema.module  # the weights that are evaluated and kept
    loop = fit.Loop(STAGE, config.TASK, checkpoint.scratch_dir(paths.checkpoints, run_key), model, optimizer,
                    scheduler, epochs=t.epochs, root=paths.root, patience=t.patience, kept=scored)  # fmt: skip
    if loop.saved is not None and ema is not None:
        ema.load_state_dict(loop.saved["ema"])

    n_params = sum(x.numel() for x in model.parameters())
    member_name = f" (member {member + 1} of {t.members}, seed {seed})" if t.members > 1 else ""
    print(f"news-train: {n_params:,} parameters, {len(train_ids)} texts, up to {t.epochs} epochs on {device}"
          + member_name)  # fmt: skip
    tracked = {"seed": seed, "model": to_dict(m), "train": to_dict(t), "prepare": to_dict(p.prepare)}
    with loop.tracking(tracked, common.mlflow) as tracker:
        for epoch in loop:
            model.train()
            order = torch.randperm(len(train_ids), generator=torch.Generator().manual_seed(seed + epoch))
            loss_sum = correct = 0.0
            epoch_start = time.time()
            for batch in tqdm(order.split(t.batch_size), desc=f"epoch {epoch}", leave=False, disable=None):
                batch, weight = distributed.shard(batch)
                width = int(train_len[batch].max())
                x, y = train_ids[batch, :width].to(device), train_y[batch].to(device)
                with autocast:
                    logits = net(x)
                    loss = loss_fn(logits.float(), y)
                loop.step(loss, weight, t.grad_clip)
                if ema is not None:
                    ema.update_parameters(model)
                loss_sum += loss.item() * len(batch) * (weight > 0)  # a rank's weight-0 stand-in is not counted
                correct += (logits.argmax(-1) == y).sum().item() * (weight > 0)
            loss_sum, correct = distributed.all_reduce_sum(loss_sum, correct)
            seconds = time.time() - epoch_start
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / len(train_ids),
                "train_accuracy": correct / len(train_ids),
                **evaluate(scored, splits["val"], device, loss_fn, p.predict.batch_size),
                "lr": scheduler.get_last_lr()[0],
                "samples_per_s": len(train_ids) / max(seconds, 1e-9),
            }
            loop.end_epoch(row, -row["val_accuracy"], ema=None if ema is None else ema.state_dict())

        if not distributed.is_main():
            return model, {}, {}, loop  # rank 0 writes every output
        best_row = loop.restore_best()
        summary = {
            "best_epoch": loop.best["epoch"],
            "epochs_run": len(loop.history),
            "parameters": n_params,
            **{f"best_{k}": round(v, 6) for k, v in best_row.items() if k not in ("epoch", "lr", "samples_per_s")},
        }
        history_rows = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items() if k != "samples_per_s"}
                        for r in loop.history]  # fmt: skip
        timings = {
            "train_seconds": round(loop.seconds, 1),
            "train_samples_per_s": round(float(np.mean([r["samples_per_s"] for r in loop.history])), 1),
        }
        tracker.log_metrics({k: v for k, v in {**summary, **timings}.items() if isinstance(v, (int, float))})
        if member == 0:  # the curves are member 0's
            write_csv(paths.plots / "train_history.csv", history_rows)
            line_plot(paths.plots / "loss.png", history_rows, "epoch", ["train_loss", "val_loss"], "news: loss",
                      "cross-entropy")  # fmt: skip
            line_plot(paths.plots / "accuracy.png", history_rows, "epoch", ["train_accuracy", "val_accuracy"],
                      "news: accuracy", "accuracy")  # fmt: skip
            tracker.log_artifact(paths.plots / "loss.png")
            tracker.log_artifact(paths.plots / "accuracy.png")
    return model, summary, timings, loop


def param_groups(model: NewsClassifier, t: config.TrainParams) -> list[dict]:
    """AdamW groups: weight decay on matrices only; the token embedding at lr × embedding_lr_scale (0 = frozen)."""
    embed = [model.embed.weight]
    rest = [(n, q) for n, q in model.named_parameters() if q is not model.embed.weight]
    decay = [q for n, q in rest if q.dim() >= 2 and ".pe" not in n]
    no_decay = [q for n, q in rest if not (q.dim() >= 2 and ".pe" not in n)]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if t.embedding_lr_scale == 1.0:
        groups[1]["params"] = embed + no_decay  # the same groups (and parameter order) as before the option
    else:
        groups.append({"params": embed, "weight_decay": 0.0, "lr": t.lr * t.embedding_lr_scale})
    return groups


def weight_average(model: NewsClassifier, decay: float):
    """An exponential moving average of `model`'s weights, updated after every step (None when decay is 0)."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def evaluate(model: NewsClassifier, split: dict, device: torch.device, loss_fn, batch_size: int) -> dict:
    logits = torch.as_tensor(predict_logits(model, split["ids"], split["lengths"], device, batch_size))
    labels = torch.as_tensor(split["labels"])
    return {
        "val_loss": loss_fn(logits, labels).item(),
        "val_accuracy": (logits.argmax(-1) == labels).float().mean().item(),
    }


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
