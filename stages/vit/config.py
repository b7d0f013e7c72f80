"""Parameters (the `vit:` section of params.yaml) and file locations of the vit task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import CommonParams, load_params
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
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 0  # linear warmup, then cosine decay to 0 (0 epochs = cosine only)


@dataclasses.dataclass
class VitParams:
    seed: int = 0
    threads: int = 0  # 0 = common.threads
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


def load(path: str | Path = "params.yaml") -> tuple[VitParams, CommonParams]:
    return load_params(TASK, VitParams, path), load_params("common", CommonParams, path)
