"""Build an ensemble member from its params, and save/load trained weights with what predict needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from stages.common import checkpoint
from stages.common.cnn import CNNConfig, build_model
from stages.common.io import atomic_path
from stages.mygo import config


def build(m: config.ModelParams, num_classes: int) -> nn.Module:
    cnn = CNNConfig(width=m.width, depth=m.depth, convs_per_block=m.convs_per_block, dropout=m.dropout)
    return build_model(m.arch, num_classes, cnn=cnn, weights=m.weights, small_input=m.small_input)


def save(path: Path, model: nn.Module, m: config.ModelParams, classes: list[str], image_size: int,
         mean: torch.Tensor, std: torch.Tensor) -> None:  # fmt: skip
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    saved = {
        "model": {**dataclasses.asdict(m), "weights": ""},  # the weights are in state_dict now
        "classes": list(classes),
        "image_size": image_size,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "state_dict": state,
    }
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)


def load(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    saved = checkpoint.load(path, made_by="mygo-train")
    m = config.ModelParams(**saved["model"])
    model = build(m, len(saved["classes"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved
