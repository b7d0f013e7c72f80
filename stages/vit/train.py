"""vit-train: the ViT on CIFAR-10 (or the sample), AdamW with warmup + cosine decay and the chosen
augmentations; per epoch the train loss/accuracy (on the augmented batches) and the test accuracy.

Checkpoints every epoch (model, optimizer, scheduler and every random generator) in a scratch folder keyed by
the params and inputs; an interrupted run resumes from the newest one, continues its MLflow run and ends with
the same weights as an uninterrupted one. The outputs are written only once every epoch has run.

Writes models/vit/model.pt, plots/vit/train_history.csv, plots/vit/acc_out.png (train and test accuracy
per epoch) and plots/vit/loss_out.png (train loss), as the course names them; metrics/vit_train.json.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.common import checkpoint, distributed, fit, schedule
from stages.common.cli import main
from stages.common.params import to_dict
from stages.common.runtime import setup, thread_count
from stages.common.tracking import stage_dep_hashes
from stages.vit import config
from stages.vit.data import load_prepared
from stages.vit.model import ViT, normalise, predict, save_model

STAGE = "vit-train"


def augment(x: torch.Tensor, a: config.AugmentParams, g: torch.Generator) -> torch.Tensor:
    """uint8 (B, 32, 32, 3) -> uint8 (B, 3, 32, 32) with random crop / flip / RandAugment."""
    x = x.permute(0, 3, 1, 2)
    n, _, h, w = x.shape
    if a.random_crop:
        padded = F.pad(x, (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (n,), generator=g), torch.randint(0, 9, (n,), generator=g)
        x = _crop(padded, dy, dx, h, w)
    if a.flip:
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if a.randaugment:
        from torchvision.transforms import v2

        x = v2.RandAugment(num_ops=2, magnitude=9)(x)
    return x


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    pairs = enumerate(zip(dy.tolist(), dx.tolist(), strict=True))
    return torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in pairs])


def mix(x: torch.Tensor, a: config.AugmentParams, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MixUp or CutMix on a float batch; returns the batch, the permutation and lambda (1.0 = unmixed)."""
    kinds = [k for k, alpha in (("mixup", a.mixup_alpha), ("cutmix", a.cutmix_alpha)) if alpha > 0]
    perm = torch.arange(len(x))
    if not kinds:
        return x, perm, 1.0
    kind = kinds[rng.integers(len(kinds))]
    lam = float(rng.beta(a.mixup_alpha, a.mixup_alpha) if kind == "mixup" else rng.beta(a.cutmix_alpha, a.cutmix_alpha))
    perm = torch.as_tensor(rng.permutation(len(x)))
    if kind == "mixup":
        return lam * x + (1 - lam) * x[perm], perm, lam
    h, w = x.shape[2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    return x, perm, 1 - (y1 - y0) * (x1 - x0) / (h * w)


def run(p: config.VitParams, common: config.CommonParams, paths: config.Paths) -> dict:
    m, t, a = p.model, p.train, p.augment
    distributed.check_batch(t.batch_size, "vit.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels))
    splits, meta = load_prepared(paths.prepared)
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    xtr_t, ytr_t, xte_t, yte_t = map(torch.as_tensor, (xtr, ytr, xte, yte))
    model = ViT(len(meta["classes"]), 32, m.patch_size, m.dim, m.depth, m.heads, m.mlp_ratio, m.dropout,
                m.attention == "sdpa").to(device)  # fmt: skip
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is saved
    optimizer = torch.optim.AdamW(fit.decay_groups(model, t.weight_decay), lr=t.lr, fused=True)
    steps = math.ceil(len(xtr) / t.batch_size)
    scheduler = schedule.warmup_cosine(optimizer, t.warmup_epochs * steps, t.epochs * steps)
    g = torch.Generator().manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    loop = fit.Loop(STAGE, config.TASK, checkpoint.scratch_dir(paths.checkpoints, run_key), model, optimizer,
                    scheduler, epochs=t.epochs, root=paths.root)  # fmt: skip
    if loop.saved is not None:
        g.set_state(loop.saved["generator"])
        rng.bit_generator.state = loop.saved["numpy_rng"]
    n_params = sum(q.numel() for q in model.parameters())
    print(
        f"vit-train: {n_params:,} parameters, {len(xtr)} train / {len(xte)} test images, {t.epochs} epochs on {device}"
    )
    with loop.tracking(
        {"seed": p.seed, "model": to_dict(m), "train": to_dict(t), "augment": to_dict(a)}, common.mlflow
    ):
        for epoch in loop:
            model.train()
            order = torch.randperm(len(xtr), generator=g)
            loss_sum = correct = 0.0
            t0 = time.time()
            for idx in tqdm(order.split(t.batch_size), desc=f"epoch {epoch}", leave=False, disable=None):
                xb = augment(xtr_t[idx], a, g).permute(0, 2, 3, 1)
                xb = normalise(xb.to(device), meta["mean"], meta["std"])
                yb = ytr_t[idx].to(device)
                xb, perm, lam = mix(xb, a, rng)
                yb_mix = yb[perm.to(device)]
                # this rank's share, of the batch augmented and mixed whole as one process does it
                part, weight = distributed.shard(torch.arange(len(idx)))
                xb, yb, yb_mix = xb[part], yb[part], yb_mix[part]
                logits = net(xb)
                loss = lam * F.cross_entropy(logits, yb, label_smoothing=a.label_smoothing)
                if lam < 1.0:
                    loss = loss + (1 - lam) * F.cross_entropy(logits, yb_mix, label_smoothing=a.label_smoothing)
                loop.step(loss, weight)
                loss_sum += loss.item() * len(yb) * (weight > 0)  # a rank's weight-0 stand-in is not counted
                correct += (logits.argmax(-1) == (yb if lam >= 0.5 else yb_mix)).sum().item() * (weight > 0)
            loss_sum, correct = distributed.all_reduce_sum(loss_sum, correct)
            test_logits = predict(model, xte_t, meta["mean"], meta["std"], device)
            row = {
                "epoch": epoch,
                "train_loss": round(loss_sum / len(xtr), 6),
                "train_accuracy": round(correct / len(xtr), 6),
                "test_loss": round(F.cross_entropy(test_logits, yte_t).item(), 6),
                "test_accuracy": round((test_logits.argmax(-1) == yte_t).float().mean().item(), 6),
                "lr": scheduler.get_last_lr()[0],
                "epoch_seconds": round(time.time() - t0, 2),
            }
            loop.end_epoch(row, generator=g.get_state(), numpy_rng=rng.bit_generator.state)  # the last is kept
        if not distributed.is_main():
            return {}  # rank 0 writes every output
        history = loop.history
        last = history[-1]
        summary = {
            "epochs": t.epochs,
            "parameters": n_params,
            "final_train_loss": last["train_loss"],
            "final_train_accuracy": last["train_accuracy"],
            "final_test_accuracy": last["test_accuracy"],
            "best_test_accuracy": max(r["test_accuracy"] for r in history),
        }
        timings = {"train_seconds": round(loop.seconds, 1)}
        loop.finish(
            (paths.train_metrics, summary),
            (paths.timings(STAGE), timings),
            csv=paths.plots / "train_history.csv",
            rows=[{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history],
            plots=[
                (paths.plots / "acc_out.png", ["train_accuracy", "test_accuracy"], "vit: accuracy", "accuracy"),
                (paths.plots / "loss_out.png", ["train_loss"], "vit: train loss", "cross-entropy"),
            ],
        )
        save_model(model, paths.model, meta["mean"], meta["std"], meta["classes"])  # last: only a complete run
    loop.clear()
    print(f"vit-train: test accuracy {summary['final_test_accuracy']:.4f} in {timings['train_seconds']} s")
    return summary


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
