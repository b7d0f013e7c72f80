"""pokemon-classifier: the Pokémon-vs-not CNN behind PDR (Pokémon Detection Rate).

The course scores PDR with its own classifier, which is not public; this one is
trained by the pipeline. Positives are the real train sprites (with horizontal
flips). Negatives are made fresh every epoch from those sprites, one kind per
image, cycling through the ways a completion goes wrong:
  noise      every pixel a random palette index
  tail-noise the real 240-token prefix, then random indices
  splice     the real prefix, then the remainder of a different sprite
  repeat     the real prefix, then its last row repeated
  blank      the real prefix, then background only
  shuffle    the sprite cut into 5×5 patches, shuffled
It is checked on dev sprites against dev negatives (a fixed seed).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.common.cli import main
from stages.common.io import atomic_path, write_json
from stages.common.runtime import setup
from stages.common.tracking import tracked_run
from stages.pokemon import config
from stages.pokemon.data import PREFIX_LEN, SIDE, load_prepared, render

NEGATIVE_KINDS = ("noise", "tail-noise", "splice", "repeat", "blank", "shuffle")


class SpriteClassifier(nn.Module):
    """Three conv blocks on 20×20 RGB, global average pooling, one logit (P(pokemon) after a sigmoid)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())

        self.width = width
        self.features = nn.Sequential(
            block(3, width),
            block(width, width),
            nn.MaxPool2d(2),  # 10×10
            block(width, 2 * width),
            nn.MaxPool2d(2),  # 5×5
            block(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, 20, 20) in [0, 1] -> (B,)
        return self.head(self.features(images).flatten(1)).squeeze(1)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(255)


def make_negatives(images: np.ndarray, rng: np.random.Generator, n_colors: int) -> np.ndarray:
    """One corrupted copy of each image (n, 400), the kind cycling through NEGATIVE_KINDS."""
    out = images.copy()
    n = len(images)
    tail = slice(PREFIX_LEN, None)
    for i in range(n):
        kind = NEGATIVE_KINDS[(i + rng.integers(len(NEGATIVE_KINDS))) % len(NEGATIVE_KINDS)]
        if kind == "noise":
            out[i] = rng.integers(n_colors, size=out.shape[1])
        elif kind == "tail-noise":
            out[i, tail] = rng.integers(n_colors, size=out.shape[1] - PREFIX_LEN)
        elif kind == "splice":
            out[i, tail] = images[(i + 1 + rng.integers(n - 1)) % n, tail] if n > 1 else 0
        elif kind == "repeat":
            last_row = images[i, PREFIX_LEN - SIDE : PREFIX_LEN]
            out[i, tail] = np.tile(last_row, (out.shape[1] - PREFIX_LEN) // SIDE)
        elif kind == "blank":
            out[i, tail] = 0
        else:  # shuffle 5×5 patches
            grid = images[i].reshape(4, 5, 4, 5).transpose(0, 2, 1, 3).reshape(16, 5, 5)
            grid = grid[rng.permutation(16)].reshape(4, 4, 5, 5).transpose(0, 2, 1, 3)
            out[i] = grid.reshape(-1)
    return out


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> dict:
    device = setup(p.seed, common.device, common.threads)
    c = p.classifier
    data = load_prepared(paths.prepared)
    palette, n_colors = data["palette"], len(data["palette"])
    dev_neg = make_negatives(data["dev"], np.random.default_rng(12345), n_colors)
    dev_x = to_tensor(render(np.concatenate([data["dev"], dev_neg]), palette)).to(device)
    dev_y = torch.cat([torch.ones(len(data["dev"])), torch.zeros(len(dev_neg))]).to(device)

    model = SpriteClassifier(c.width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=1e-4)
    rng = np.random.default_rng(p.seed)
    start = time.time()
    with tracked_run(
        config.TASK, "pokemon-classifier", {"seed": p.seed, "classifier": vars(c)}, common.mlflow, paths.root
    ) as tracker:
        for epoch in range(1, c.epochs + 1):
            model.train()
            positives = data["train"]
            negatives = make_negatives(positives, rng, n_colors)
            rgb = render(np.concatenate([positives, negatives]), palette)
            flip = rng.random(len(rgb)) < 0.5
            rgb[flip] = rgb[flip, :, ::-1]
            x = to_tensor(rgb)
            y = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
            order = torch.from_numpy(rng.permutation(len(x)))
            losses = []
            for batch in order.split(c.batch_size):
                logits = model(x[batch].to(device))
                loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch].to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            dev_accuracy = accuracy(model, dev_x, dev_y, c.threshold)
            tracker.log_metrics({"train_loss": float(np.mean(losses)), "dev_accuracy": dev_accuracy}, step=epoch)
            print(f"classifier epoch {epoch}: loss {np.mean(losses):.4f} dev accuracy {dev_accuracy:.3f}")
        model.eval()
        with torch.inference_mode():
            dev_prob = torch.sigmoid(model(dev_x))
        metrics = {
            "dev_accuracy": accuracy(model, dev_x, dev_y, c.threshold),
            "dev_real_detection_rate": float((dev_prob[dev_y == 1] > c.threshold).float().mean()),
            "dev_negative_detection_rate": float((dev_prob[dev_y == 0] > c.threshold).float().mean()),
        }
        timings = {"train_seconds": round(time.time() - start, 1)}
        tracker.log_metrics({**metrics, **timings})
    with atomic_path(paths.classifier) as tmp:
        torch.save({"width": c.width, "threshold": c.threshold, "state_dict": model.cpu().state_dict()}, tmp)
    write_json(paths.metrics / "pokemon_classifier.json", metrics)
    write_json(paths.timings("pokemon-classifier"), timings)
    return metrics


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threshold: float) -> float:
    model.eval()
    with torch.inference_mode():
        return float(((torch.sigmoid(model(x)) > threshold).float() == y).float().mean())


def load(path: str | Path, device: torch.device | str = "cpu") -> tuple[SpriteClassifier, float]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = SpriteClassifier(saved["width"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved["threshold"]


@torch.inference_mode()
def detection_rate(model: SpriteClassifier, threshold: float, images: np.ndarray, palette: np.ndarray) -> float:
    """PDR: the share of images (n, 400) the classifier takes for a Pokémon."""
    device = next(model.parameters()).device
    prob = torch.sigmoid(model(to_tensor(render(images, palette)).to(device)))
    return float((prob > threshold).float().mean())


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
