"""news-train: the from-scratch Transformer encoder classifier.

AdamW, linear warmup then cosine decay, label smoothing, gradient clipping, early
stopping on validation accuracy (the best epoch's weights are kept). Per-epoch
loss/accuracy go to MLflow and to plots/news/train_history.csv (dvc plots).
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from stages.common import checkpoint, distributed
from stages.common.cli import main
from stages.common.io import write_csv, write_json
from stages.common.params import ParamsError, to_dict
from stages.common.plots import line_plot
from stages.common.runtime import resolve_device, seed_everything, set_threads, thread_count
from stages.common.tracking import stage_dep_hashes, tracked_run
from stages.news import config
from stages.news.data import load_prepared
from stages.news.model import NewsClassifier, init_embeddings, predict_logits, save_model
from stages.news.text import Tokenizer

STAGE = "news-train"


def warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor


def run(p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> dict:
    m, t = p.model, p.train
    if m.d_model % m.nhead:
        raise ParamsError(f"news.model.d_model ({m.d_model}) must be divisible by news.model.nhead ({m.nhead})")
    distributed.check_batch(t.batch_size, "news.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    seed_everything(p.seed)
    set_threads(thread_count(p.threads, common.threads))
    device = distributed.init(resolve_device(common.device))
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
            m.embedding_init, tr["ids"], tr["lengths"], vocab, m.d_model, t.embedding_epochs, p.seed
        )
        init_embeddings(model, vectors, found)
        print(f"news-train: {m.embedding_init} vectors for {found.sum()} of {len(vocab)} tokens")
    model.to(device)
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    decay = [q for n, q in model.named_parameters() if q.dim() >= 2 and "embed" not in n and ".pe" not in n]
    no_decay = [q for n, q in model.named_parameters() if not (q.dim() >= 2 and "embed" not in n and ".pe" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=t.lr
    )
    train_ids = torch.as_tensor(splits["train"]["ids"], dtype=torch.long)
    train_len = torch.as_tensor(splits["train"]["lengths"], dtype=torch.long)
    train_y = torch.as_tensor(splits["train"]["labels"])
    steps_per_epoch = math.ceil(len(train_ids) / t.batch_size)
    total = t.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(int(t.warmup_fraction * total), total))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    scratch = checkpoint.scratch_dir(paths.checkpoints, run_key)
    history: list[dict] = []
    best = {"val_accuracy": -1.0, "epoch": 0, "state": None}
    first_epoch = 1
    if (saved := checkpoint.resume(scratch, model, optimizer, scheduler)) is not None:
        history, best, first_epoch = saved["history"], saved["best"], saved["epoch"] + 1

    n_params = sum(x.numel() for x in model.parameters())
    print(f"news-train: {n_params:,} parameters, {len(train_ids)} texts, up to {t.epochs} epochs on {device}")
    start = time.time()
    tracked = {"seed": p.seed, "model": to_dict(m), "train": to_dict(t), "prepare": to_dict(p.prepare)}
    with tracked_run(config.TASK, STAGE, tracked, common.mlflow and distributed.is_main()) as tracker:
        for epoch in range(first_epoch, t.epochs + 1):
            if t.patience and epoch - best["epoch"] > t.patience and best["epoch"]:
                print(f"early stop: no better validation accuracy since epoch {best['epoch']}")
                break
            model.train()
            order = torch.randperm(len(train_ids), generator=torch.Generator().manual_seed(p.seed + epoch))
            loss_sum = correct = 0.0
            epoch_start = time.time()
            for batch in order.split(t.batch_size):
                batch, weight = distributed.shard(batch)
                width = int(train_len[batch].max())
                x, y = train_ids[batch, :width].to(device), train_y[batch].to(device)
                with autocast:
                    logits = net(x)
                    loss = loss_fn(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                distributed.weighted(loss, weight).backward()
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
                scheduler.step()
                loss_sum += loss.item() * len(batch) * (weight > 0)  # a rank's weight-0 stand-in is not counted
                correct += (logits.argmax(-1) == y).sum().item() * (weight > 0)
            loss_sum, correct = distributed.all_reduce_sum(loss_sum, correct)
            seconds = time.time() - epoch_start
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / len(train_ids),
                "train_accuracy": correct / len(train_ids),
                **evaluate(model, splits["val"], device, loss_fn, p.predict.batch_size),
                "lr": scheduler.get_last_lr()[0],
                "samples_per_s": len(train_ids) / max(seconds, 1e-9),
            }
            row = distributed.broadcast(row)  # rank 0's row: every rank stops at the same epoch
            if row["val_accuracy"] > best["val_accuracy"]:
                best = {"val_accuracy": row["val_accuracy"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            history.append(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            if distributed.is_main():
                checkpoint.save(scratch, epoch, model, optimizer, scheduler, history=history, best=best, epoch=epoch)

        if not distributed.is_main():
            return {}  # rank 0 writes every output
        model.load_state_dict(best["state"])
        save_model(model, paths.model, len(vocab), n_classes)
        best_row = history[best["epoch"] - 1]
        summary = {
            "best_epoch": best["epoch"],
            "epochs_run": len(history),
            "parameters": n_params,
            **{f"best_{k}": round(v, 6) for k, v in best_row.items() if k not in ("epoch", "lr", "samples_per_s")},
        }
        history_rows = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items() if k != "samples_per_s"}
                        for r in history]  # fmt: skip
        write_csv(paths.plots / "train_history.csv", history_rows)
        line_plot(
            paths.plots / "loss.png", history_rows, "epoch", ["train_loss", "val_loss"], "news: loss", "cross-entropy"
        )
        line_plot(paths.plots / "accuracy.png", history_rows, "epoch", ["train_accuracy", "val_accuracy"],
                  "news: accuracy", "accuracy")  # fmt: skip
        write_json(paths.metrics / "news_train.json", summary)
        timings = {
            "train_seconds": round(time.time() - start, 1),
            "train_samples_per_s": round(float(np.mean([r["samples_per_s"] for r in history])), 1),
        }
        write_json(paths.timings(STAGE), timings)
        tracker.log_metrics({k: v for k, v in {**summary, **timings}.items() if isinstance(v, (int, float))})
        tracker.log_artifact(paths.plots / "loss.png")
        tracker.log_artifact(paths.plots / "accuracy.png")
    checkpoint.clear(scratch)
    return summary


def evaluate(model: NewsClassifier, split: dict, device: torch.device, loss_fn, batch_size: int) -> dict:
    logits = torch.as_tensor(predict_logits(model, split["ids"], split["lengths"], device, batch_size))
    labels = torch.as_tensor(split["labels"])
    return {
        "val_loss": loss_fn(logits, labels).item(),
        "val_accuracy": (logits.argmax(-1) == labels).float().mean().item(),
    }


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
