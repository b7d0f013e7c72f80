"""The PDR judge: the Pokémon-vs-not CNN ensemble that pokemon-classifier trains, loaded and applied.

pokemon-train (model selection by PDR) and pokemon-evaluate read the trained ensemble through this
module, so neither imports the classifier stage; why an ensemble, and the negatives it learns from,
are in stages/pokemon/classifier.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.common import checkpoint
from stages.common.io import DataError
from stages.pokemon.data import render


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


class Ensemble(nn.Module):
    """Members' mean P(pokemon) over the image and its mirror image, returned as a logit (so
    `sigmoid(ensemble(x))` is the mean probability)."""

    def __init__(self, members: list[SpriteClassifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views = (images, images.flip(3))  # the sprite and its mirror image (members are trained on both)
        prob = torch.stack([torch.sigmoid(m(v)) for m in self.members for v in views]).mean(0)
        return torch.logit(prob, eps=1e-6)


def load(path: str | Path, device: torch.device | str = "cpu") -> tuple[Ensemble, float]:
    saved = checkpoint.load(path, made_by="pokemon-classifier")
    if "members" not in saved:
        raise DataError(
            f"{path}: a classifier from an older pokemon-classifier; re-run it (dvc repro pokemon-classifier)"
        )
    try:
        members = []
        for state in saved["members"]:
            model = SpriteClassifier(saved["width"])
            model.load_state_dict(state)
            members.append(model)
        threshold = float(saved["threshold"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{path}: not a model written by pokemon-classifier ({type(err).__name__}); run it again"
        ) from None
    return Ensemble(members).to(device).eval(), threshold


@torch.inference_mode()
def probabilities(model: nn.Module, images: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """P(pokemon) of each image (n, 400)."""
    device = next(model.parameters()).device
    return torch.sigmoid(model(to_tensor(render(images, palette)).to(device))).cpu().numpy()


def detection_rate(model: nn.Module, threshold: float, images: np.ndarray, palette: np.ndarray) -> float:
    """PDR: the share of images (n, 400) the classifier takes for a Pokémon."""
    return float((probabilities(model, images, palette) > threshold).mean())
