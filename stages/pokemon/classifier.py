"""pokemon-classifier: the Pokémon-vs-not CNN behind PDR (Pokémon Detection Rate).

The course scores PDR with its own classifier, which is not public; this one is
trained by the pipeline. Positives are the real train sprites, each epoch moved by
up to `classifier.translate` pixels; negatives are made fresh every epoch from those
moved sprites, one kind per image; every image of either class may be flipped
left-right and, with probability `classifier.recolor`, have its R, G, B channels
permuted. Without the moves and colours a network memorises the 632 train sprites
and rejects unseen real ones, the more the longer it trains; with them, longer
training separates real sprites from every kind of negative better (stages/pokemon/README.md, "The PDR detector"). The kinds
of negative, cycling through the ways a completion goes wrong:
  noise      every pixel a random palette index
  tail-noise the real 240-token prefix, then random indices
  splice     the real prefix, then the remainder of a different sprite
  repeat     the real prefix, then its last row repeated
  blank      the real prefix, then background only
  shuffle    the sprite cut into 5×5 patches, shuffled
and three that look like a weak language model's completions (the sprite's own
colours, in roughly the right places):
  speckle    the real remainder with 25–60% of its pixels set to colours of the sprite
  smear      the remainder written pixel by pixel from the pixel above or to the left,
             now and then a colour of the sprite (what a short-context model produces)
  shift      the real remainder moved 3–6 pixels sideways
PDR is a knife edge for one network: completions lie between positives and
negatives, and whether one seed's network calls them 0.49 or 0.51 decided it
(0.28 to 0.60 on the same completions). So the stage trains `classifier.members`
networks (seeds classifier.seed·1000 + i, the same data order rule) and PDR thresholds their
MEAN probability; the hard negatives put the decision boundary where completions
are, so it is set by the data rather than by the seed. Precision and recall are
measured on the real dev sprites against every kind of dev negative (fixed seed).
The detector has its own seed (`classifier.seed`), not the generator's `pokemon.seed`, and trains at one thread
with the portable kernels whatever `common.threads` and `common.kernels` say (config.DETECTOR_THREADS,
DETECTOR_KERNELS): runs of the generator over seeds, thread counts and CPUs are judged by one detector, the same
bytes everywhere, so their PDRs differ by the generator alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.common import checkpoint, distributed, fit, schedule
from stages.common.cli import main
from stages.common.io import atomic_path, write_json
from stages.common.params import to_dict
from stages.common.runtime import setup, write_timings
from stages.common.tracking import stage_dep_hashes, tracked_run
from stages.pokemon import config
from stages.pokemon.data import PREFIX_LEN, SIDE, load_prepared, render
from stages.pokemon.pdr import Ensemble, SpriteClassifier, detection_rate, to_tensor

STAGE = "pokemon-classifier"
NEGATIVE_KINDS = ("noise", "tail-noise", "splice", "repeat", "blank", "shuffle", "speckle", "smear", "shift")


def make_negatives(
    images: np.ndarray, rng: np.random.Generator, n_colors: int, kinds: tuple[str, ...] | None = None
) -> np.ndarray:
    """One corrupted copy of each image (n, 400): the kind cycling through NEGATIVE_KINDS (from a random start),
    or, with `kinds`, image i gets kinds[i]."""
    out = images.copy()
    n = len(images)
    tail = slice(PREFIX_LEN, None)
    n_tail = out.shape[1] - PREFIX_LEN
    for i in range(n):
        if kinds is None:
            kind = NEGATIVE_KINDS[(i + rng.integers(len(NEGATIVE_KINDS))) % len(NEGATIVE_KINDS)]
        else:
            kind = kinds[i]
        if kind == "noise":
            out[i] = rng.integers(n_colors, size=out.shape[1])
        elif kind == "tail-noise":
            out[i, tail] = rng.integers(n_colors, size=n_tail)
        elif kind == "splice":
            out[i, tail] = images[(i + 1 + rng.integers(n - 1)) % n, tail] if n > 1 else 0
        elif kind == "repeat":
            last_row = images[i, PREFIX_LEN - SIDE : PREFIX_LEN]
            out[i, tail] = np.tile(last_row, n_tail // SIDE)
        elif kind == "blank":
            out[i, tail] = 0
        elif kind == "speckle":
            colors = np.unique(images[i])
            hit = rng.random(n_tail) < rng.uniform(0.25, 0.6)
            out[i, tail][hit] = rng.choice(colors, size=int(hit.sum()))
        elif kind == "smear":
            colors = np.unique(images[i])
            grid = out[i].reshape(SIDE, SIDE)
            for pos in range(PREFIX_LEN, SIDE * SIDE):
                r, c = divmod(pos, SIDE)
                u = rng.random()
                if u < 0.15:
                    grid[r, c] = rng.choice(colors)
                elif u < 0.6 or c == 0:
                    grid[r, c] = grid[r - 1, c]
                else:
                    grid[r, c] = grid[r, c - 1]
        elif kind == "shift":
            step = int(rng.integers(3, 7)) * (1 if rng.random() < 0.5 else -1)
            rows = images[i, tail].reshape(-1, SIDE)
            shifted = np.zeros_like(rows)
            if step > 0:
                shifted[:, step:] = rows[:, :-step]
            else:
                shifted[:, :step] = rows[:, -step:]
            out[i, tail] = shifted.reshape(-1)
        else:  # shuffle 5×5 patches
            grid = images[i].reshape(4, 5, 4, 5).transpose(0, 2, 1, 3).reshape(16, 5, 5)
            grid = grid[rng.permutation(16)].reshape(4, 4, 5, 5).transpose(0, 2, 1, 3)
            out[i] = grid.reshape(-1)
    return out


def translate(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Each sprite (n, 400) moved by dy, dx in [-max_shift, max_shift] on its 20×20 canvas, background (index 0)
    filling in. A Pokémon one pixel lower is still one: the positives stop being 632 fixed pictures the networks
    can memorise (which made them reject unseen real sprites), while the `shift` negative, which moves only the
    remainder against the prefix, stays a seam."""
    grids = images.reshape(-1, SIDE, SIDE)
    out = np.zeros_like(grids)
    for i, (dy, dx) in enumerate(rng.integers(-max_shift, max_shift + 1, size=(len(grids), 2))):
        src = grids[i, max(-dy, 0) : SIDE - max(dy, 0), max(-dx, 0) : SIDE - max(dx, 0)]
        out[i, max(dy, 0) : SIDE - max(-dy, 0), max(dx, 0) : SIDE - max(-dx, 0)] = src
    return out.reshape(images.shape)


def dev_negatives(dev: np.ndarray, n_colors: int) -> dict[str, np.ndarray]:
    """Every kind of negative made from every dev sprite, with a fixed seed: {kind: (n, 400)}."""
    rng = np.random.default_rng(12345)
    return {kind: make_negatives(dev, rng, n_colors, (kind,) * len(dev)) for kind in NEGATIVE_KINDS}


def train_member(
    i: int, p: config.PokemonParams, data: dict, device: torch.device, dev_x: torch.Tensor, dev_y, scratch: Path,
    common: config.CommonParams, root: Path,
) -> SpriteClassifier:  # fmt: skip
    c = p.classifier
    seed = c.seed * 1000 + i
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    palette, n_colors = data["palette"], len(data["palette"])
    model = SpriteClassifier(c.width).to(device)
    net = distributed.wrap(model)  # trains; `model` (same weights) evaluates and is kept
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=1e-4, fused=True)
    steps = c.epochs * -(-2 * len(data["train"]) // c.batch_size)
    scheduler = schedule.warmup_cosine(optimizer, 0, steps)
    # a finished member's last checkpoint stays until the ensemble is done: a restart skips it
    loop = fit.Loop(STAGE, config.TASK, scratch / f"member{i}", model, optimizer, scheduler, epochs=c.epochs, root=root)
    if loop.saved:
        rng.bit_generator.state = loop.saved["numpy_rng"]
    with loop.tracking({"member": i, "classifier": to_dict(c)}, common.mlflow):
        for epoch in loop:
            model.train()
            positives = translate(data["train"], rng, c.translate) if c.translate else data["train"]
            negatives = make_negatives(positives, rng, n_colors)
            rgb = render(np.concatenate([positives, negatives]), palette)
            flip = rng.random(len(rgb)) < 0.5
            rgb[flip] = rgb[flip, :, ::-1]
            if c.recolor:  # a sprite in other colours is still one (or still not): what is learnt is shape and seams
                for k in np.flatnonzero(rng.random(len(rgb)) < c.recolor):
                    rgb[k] = rgb[k][..., rng.permutation(3)]
            x = to_tensor(rgb)
            y = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
            order = torch.from_numpy(rng.permutation(len(x)))
            losses = []
            for batch in order.split(c.batch_size):
                batch, weight = distributed.shard(batch)  # this rank's share of the global batch
                logits = net(x[batch].to(device))
                loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch].to(device))
                loop.step(loss, weight)
                losses.append(loss.item() * weight)  # summed over ranks, / world: the global batch's loss
            losses = [v / distributed.world() for v in distributed.all_reduce_sum(*losses)]
            row = {"member": i + 1, "epoch": epoch, "train_loss": float(np.mean(losses)),
                   "dev_accuracy": accuracy(model, dev_x, dev_y, c.threshold)}  # fmt: skip
            loop.end_epoch(row, numpy_rng=rng.bit_generator.state)
    return model.eval()


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> dict:
    c = p.classifier
    distributed.check_batch(c.batch_size, "pokemon.classifier.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    device = distributed.init(setup(c.seed, common.device, config.DETECTOR_THREADS, config.DETECTOR_KERNELS))
    data = load_prepared(paths.prepared)
    palette, n_colors = data["palette"], len(data["palette"])
    negatives = dev_negatives(data["dev"], n_colors)
    # the per-epoch check: the real dev sprites against one negative of each kind in turn
    mixed = np.stack([negatives[NEGATIVE_KINDS[i % len(NEGATIVE_KINDS)]][i] for i in range(len(data["dev"]))])
    dev_x = to_tensor(render(np.concatenate([data["dev"], mixed]), palette)).to(device)
    dev_y = torch.cat([torch.ones(len(data["dev"])), torch.zeros(len(mixed))]).to(device)
    run_key = {
        "classifier": to_dict(c),
        "device": str(device),
        "deps": stage_dep_hashes(STAGE, paths.root),
    }
    scratch = checkpoint.scratch_dir(paths.checkpoints / "classifier", run_key)
    start = time.time()
    members = [train_member(i, p, data, device, dev_x, dev_y, scratch, common, paths.root) for i in range(c.members)]
    if not distributed.is_main():
        return {}  # rank 0 writes every output
    ensemble = Ensemble(members)
    metrics = {
        "dev_accuracy": accuracy(ensemble, dev_x, dev_y, c.threshold),
        **precision_recall(ensemble, c.threshold, data["dev"], negatives, palette),
        "members": c.members,
    }
    timings = {"train_seconds": round(time.time() - start, 1)}
    with tracked_run(config.TASK, STAGE, {"classifier": to_dict(c)}, common.mlflow, paths.root) as tracker:
        tracker.log_metrics({**{k: v for k, v in metrics.items() if isinstance(v, float)}, **timings})
    with atomic_path(paths.classifier) as tmp:
        torch.save(
            {"width": c.width, "threshold": c.threshold, "members": [m.cpu().state_dict() for m in members]}, tmp
        )
    write_json(paths.metrics / "pokemon_classifier.json", metrics)
    write_timings(paths.timings(STAGE), timings)
    checkpoint.clear(scratch)
    return metrics


def precision_recall(
    model: nn.Module, threshold: float, real: np.ndarray, negatives: dict[str, np.ndarray], palette: np.ndarray
) -> dict:
    """Recall on the real dev sprites; per negative kind, the share accepted (false-positive rate) and the
    precision of the real sprites against that kind (as many negatives as real sprites)."""
    recall = detection_rate(model, threshold, real, palette)
    out: dict = {"dev_recall": recall}
    per_kind = {}
    for kind, images in negatives.items():
        fpr = detection_rate(model, threshold, images, palette)
        precision = recall / (recall + fpr) if recall + fpr > 0 else 0.0
        per_kind[kind] = {"false_positive_rate": fpr, "precision": precision}
    all_fpr = float(np.mean([k["false_positive_rate"] for k in per_kind.values()]))
    out["dev_precision"] = recall / (recall + all_fpr) if recall + all_fpr > 0 else 0.0
    out["dev_false_positive_rate"] = all_fpr
    out["negatives"] = per_kind
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threshold: float) -> float:
    model.eval()
    with torch.inference_mode():
        return float(((torch.sigmoid(model(x)) > threshold).float() == y).float().mean())


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
