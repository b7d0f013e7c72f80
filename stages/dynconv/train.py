"""dynconv-train@<model>: train `dynamic` or `naive` (the matrix item, sys.argv[1]) from scratch,
`dynconv.train.runs` times with seeds seed, seed+1, … (the run-to-run spread).

Each training image gets a channel subset from `dynconv.models.<model>.channel_sampling` (none: RGB;
hierarchical: size, then subset; uniform: one of the 7; a subset name such as B: always that one, a
dedicated model); its missing channels are zeroed. With `train.consistency` > 0 and a random scheme,
the model's own prediction on the image's RGB view (no gradient) is a soft target for its prediction on
the subset (KL, that weight). AdamW with cosine decay, random crop + flip. Per epoch: train loss/accuracy
and validation accuracy on RGB and on the mean of the single channels. Resumes from per-epoch checkpoints after an interruption.

Writes models/dynconv/<model>.pt (every run's weights), plots/dynconv/train_<model>.csv/.png (per-epoch
curves, mean over runs), metrics/dynconv_train_<model>.json, timings/dynconv-train-<model>.json.
"""

from __future__ import annotations

import math
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, schedule
from stages.common.cli import main
from stages.common.io import write_csv, write_json
from stages.common.params import ParamsError, to_dict
from stages.common.plots import line_plot
from stages.common.runtime import setup, write_timings
from stages.common.tracking import stage_dep_hashes, tracked_run
from stages.dynconv import config
from stages.dynconv.model import build, predict, sample_masks, save
from stages.mini_imagenet.data import load_classes, load_split, to_tensor

STAGE = "dynconv-train"


def augment(x: torch.Tensor, t: config.TrainParams, g: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding, i.e. the mean after normalisation) and horizontal flip of (B, 3, S, S)."""
    n, _, h, w = x.shape
    if t.random_crop:
        r = t.random_crop
        padded = F.pad(x, (r, r, r, r))
        dy = torch.randint(0, 2 * r + 1, (n,), generator=g).tolist()
        dx = torch.randint(0, 2 * r + 1, (n,), generator=g).tolist()
        x = torch.stack([padded[i, :, y : y + h, z : z + w] for i, (y, z) in enumerate(zip(dy, dx, strict=True))])
    if t.flip:
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def accuracy(model, x: torch.Tensor, y: torch.Tensor, subset: str, batch_size: int, device) -> float:
    return float((predict(model, x, subset, batch_size, device) == y).float().mean())


def run(p: config.DynconvParams, common: config.CommonParams, paths: config.Paths, name: str = "") -> dict:
    if name not in config.MODELS:
        raise ParamsError(f"dynconv-train needs the model name as its argument: one of {', '.join(config.MODELS)}")
    p.check_model(name)
    t, variant = p.train, p.model(name)
    distributed.check_batch(t.batch_size, "dynconv.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, common.threads, common.kernels))
    classes = load_classes(paths.prepared)
    xtr_u8, ytr = load_split(paths.prepared, "train")
    xva_u8, yva = load_split(paths.prepared, "val")
    xtr, xva = to_tensor(xtr_u8), to_tensor(xva_u8)
    ytr, yva = torch.as_tensor(ytr), torch.as_tensor(yva)
    size = int(xtr.shape[-1])
    steps = math.ceil(len(xtr) / t.batch_size)
    stage = f"{STAGE}@{name}"
    key = {"name": name, "seed": p.seed, "backbone": vars(p.backbone), "variant": vars(variant), "train": vars(t),
           "device": str(device), "threads": common.threads, "deps": stage_dep_hashes(STAGE, paths.root)}  # fmt: skip
    scratch = checkpoint.scratch_dir(paths.checkpoints / name, key)
    tracked = {"seed": p.seed, "backbone": to_dict(p.backbone), "variant": to_dict(variant), "train": to_dict(t)}
    states, history, start = [], [], time.time()
    for r in range(t.runs):  # a finished run's last checkpoint stays until every run is done: a restart skips it
        setup(p.seed + r, common.device, common.threads, common.kernels)
        model = build(name, p, len(classes)).to(device)
        net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is kept
        optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
        total = t.epochs * steps
        scheduler = schedule.warmup_cosine(optimizer, 0, total)
        g = torch.Generator().manual_seed(p.seed + r)
        loop = fit.Loop(stage, config.TASK, scratch / f"run{r}", model, optimizer, scheduler, epochs=t.epochs,
                        root=paths.root)  # fmt: skip
        if loop.saved:
            g.set_state(loop.saved["generator"])
        n_params = sum(q.numel() for q in model.parameters())
        print(f"{stage} run {r + 1}/{t.runs}: {n_params:,} parameters, {len(xtr)} train images {size}², "
              f"{t.epochs} epochs, channel sampling {variant.channel_sampling}, on {device}")  # fmt: skip
        with loop.tracking({**tracked, "run": r}, common.mlflow):
            for epoch in loop:
                model.train()
                order = torch.randperm(len(xtr), generator=g)
                loss_sum, correct = 0.0, 0
                quiet = None if distributed.is_main() else True
                for idx in tqdm(order.split(t.batch_size), desc=f"epoch {epoch}", leave=False, disable=quiet):
                    xb = augment(xtr[idx], t, g).to(device)
                    mask = sample_masks(len(idx), variant.channel_sampling, g).to(device)
                    yb = ytr[idx].to(device)
                    # this rank's share, of the batch augmented and masked whole as one process does it
                    part, weight = distributed.shard(torch.arange(len(idx)))
                    xb, mask, yb = xb[part], mask[part], yb[part]
                    logits = net(xb, mask)
                    loss = F.cross_entropy(logits, yb, label_smoothing=t.label_smoothing)
                    if t.consistency and variant.channel_sampling in config.RANDOM_SAMPLING:  # RGB teaches subsets
                        with torch.no_grad():
                            teacher = F.softmax(net(xb, torch.ones_like(mask)), 1)
                        kl = F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean")
                        loss = loss + t.consistency * kl
                    loop.step(loss, weight)
                    loss_sum += loss.item() * len(yb) * (weight > 0)  # a rank's weight-0 stand-in is not counted
                    correct += int((logits.argmax(1) == yb).sum()) * (weight > 0)
                loss_sum, correct = distributed.all_reduce_sum(loss_sum, correct)
                single = [accuracy(model, xva, yva, s, 256, device) for s in config.SINGLE]
                loop.end_epoch({  # rank 0's row for every rank (BatchNorm buffers differ by rank on CPU)
                    "run": r,
                    "epoch": epoch,
                    "train_loss": round(loss_sum / len(xtr), 6),
                    "train_accuracy": round(correct / len(xtr), 6),
                    "val_accuracy_rgb": round(accuracy(model, xva, yva, "RGB", 256, device), 6),
                    "val_accuracy_single": round(sum(single) / 3, 6),
                }, generator=g.get_state())  # fmt: skip
        states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        history += loop.history
    with tracked_run(config.TASK, stage, tracked, common.mlflow and distributed.is_main(), paths.root) as tracker:
        if not distributed.is_main():
            return {}  # rank 0 writes every output
        save(paths.model(name), name, states, p, classes, size)
        curves = mean_curves(history, t.epochs)
        write_csv(paths.history(name), curves)
        line_plot(paths.plots / f"train_{name}.png", curves, "epoch",
                  ["train_accuracy", "val_accuracy_rgb", "val_accuracy_single"],
                  f"dynconv {name}: accuracy per epoch (mean of {t.runs} runs)", "accuracy")  # fmt: skip
        finals = [row for row in history if row["epoch"] == t.epochs]
        summary = {
            "model": name,
            "channel_sampling": variant.channel_sampling,
            "parameters": sum(v.numel() for k, v in states[0].items() if "running" not in k and "num_batches" not in k),
            "epochs": t.epochs,
            "runs": t.runs,
            "image_size": size,
            "final_val_accuracy_rgb": [row["val_accuracy_rgb"] for row in finals],
            "final_val_accuracy_single": [row["val_accuracy_single"] for row in finals],
            "final_train_loss": [row["train_loss"] for row in finals],
        }
        write_json(paths.train_metrics(name), summary)
        write_timings(paths.timings(f"{STAGE}-{name}"), {"train_seconds": round(time.time() - start, 1), "device": str(device),
                                               "threads": common.threads})  # fmt: skip
        tracker.log_artifact(paths.plots / f"train_{name}.png")
        tracker.log_artifact(paths.history(name))
    checkpoint.clear(scratch)  # every run's folder
    print(f"{stage}: final validation accuracy RGB {summary['final_val_accuracy_rgb']}, "
          f"single channels {summary['final_val_accuracy_single']}")  # fmt: skip
    return summary


def mean_curves(history: list[dict], epochs: int) -> list[dict]:
    """Per-epoch means over the runs (the CSV `dvc plots` reads)."""
    keys = ("train_loss", "train_accuracy", "val_accuracy_rgb", "val_accuracy_single")
    rows = []
    for epoch in range(1, epochs + 1):
        at = [row for row in history if row["epoch"] == epoch]
        rows.append({"epoch": epoch, **{k: round(sum(row[k] for row in at) / len(at), 6) for k in keys}})
    return rows


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths(), *sys.argv[1:]))
