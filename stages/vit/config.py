"""Parameters (the `vit:` section of params.yaml) and file locations of the vit task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import (
    PROBABILITY,
    CommonParams,
    Range,
    above,
    at_least,
    between,
    check_ranges,
    load_common,
    load_params,
    require,
    validator,
)
from stages.common.paths import TaskPaths

TASK = "vit"


@dataclasses.dataclass
class DataParams:
    # sample | dir:<CIFAR-10 as train/<class>/*.jpg + test/<class>/*.jpg, or the official cifar-10-batches-py>
    # | torchvision (downloads CIFAR-10; needs internet)
    source: str = "sample"
    sample_train: int = 100  # generated images per class
    sample_test: int = 20
    sample_seed: int = 0
    max_train_per_class: int = 0  # 0 = all; otherwise the first N of each class (quick runs on real data)
    max_test_per_class: int = 0


@dataclasses.dataclass
class ModelParams:
    patch_size: int = 4
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    attention: Literal["own", "sdpa"] = "own"


@dataclasses.dataclass
class AugmentParams:
    random_crop: bool = True  # pad 4 + random 32×32 crop
    flip: bool = True  # random horizontal flip
    randaugment: bool = False  # torchvision RandAugment (2 ops, magnitude 9), one draw per batch
    mixup_alpha: float = 0.0  # > 0: MixUp with Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # > 0: CutMix; with both, each batch picks one at random
    label_smoothing: float = 0.0


@dataclasses.dataclass
class TrainParams:
    epochs: int = 8  # course: 100
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1  # linear warmup, then cosine decay to 0 (0 epochs = cosine only)


@dataclasses.dataclass
class VitParams:
    seed: int = 0
    threads: int = 1  # torch CPU threads; 0 = common.threads
    data: DataParams = dataclasses.field(default_factory=DataParams)
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)


# The course's targets after 100 epochs.
TARGETS = {"test_accuracy_min": 0.65, "train_accuracy": 1.0, "train_loss_max": 0.3}


class Paths(TaskPaths):
    """Every file the vit stages read or write, beyond the shared ones in TaskPaths."""

    task = TASK

    @property
    def model(self) -> Path:
        return self._p("models", TASK, "model.pt")

    @property
    def train_metrics(self) -> Path:
        return self._p("metrics", f"{TASK}_train.json")

    @property
    def metrics(self) -> Path:
        return self._p("metrics", f"{TASK}.json")


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
RANGES = {
    "threads": between(0, 1024),
    "data.sample_train": between(1, 100_000), "data.sample_test": between(1, 100_000),  # images per class
    "data.max_train_per_class": between(0, 100_000_000), "data.max_test_per_class": between(0, 100_000_000),
    "model.patch_size": between(1, 32), "model.dim": between(1, 8192), "model.depth": between(1, 128),
    "model.heads": between(1, 128), "model.mlp_ratio": Range(0, 64, open_low=True), "model.dropout": PROBABILITY,
    "augment.mixup_alpha": at_least(0), "augment.cutmix_alpha": at_least(0),
    "augment.label_smoothing": between(0, 1, open_high=True),
    "train.epochs": between(1, 100_000), "train.batch_size": between(1, 65_536), "train.lr": above(0),
    "train.weight_decay": at_least(0), "train.warmup_epochs": at_least(0),
}  # fmt: skip


@validator
def validate(p: VitParams) -> VitParams:
    """Every range and cross-parameter rule, before any stage builds anything."""
    check_ranges(p, TASK, RANGES)
    m = p.model
    require(m.dim % m.heads == 0, f"parameter '{TASK}.model.dim' ({m.dim}) must be divisible by "
            f"'{TASK}.model.heads' ({m.heads})")  # fmt: skip
    require(32 % m.patch_size == 0, f"parameter '{TASK}.model.patch_size' ({m.patch_size}) must divide 32 "
            "(the CIFAR-10 image size): 1, 2, 4, 8, 16 or 32")  # fmt: skip
    require(p.train.warmup_epochs <= p.train.epochs, f"parameter '{TASK}.train.warmup_epochs' "
            f"({p.train.warmup_epochs}) exceeds '{TASK}.train.epochs' ({p.train.epochs})")  # fmt: skip
    return p


def load(path: str | Path = "params.yaml") -> tuple[VitParams, CommonParams]:
    return validate(load_params(TASK, VitParams, path)), load_common(path)
