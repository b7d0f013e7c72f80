"""Parameters (the `mygo:` section of params.yaml) and file locations of the mygo task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import (
    PROBABILITY,
    CommonParams,
    ParamsError,
    above,
    at_least,
    between,
    check_ranges,
    check_sha256,
    load_common,
    load_params,
    validator,
)
from stages.common.paths import TaskPaths

TASK = "mygo"


@dataclasses.dataclass
class DataParams:
    source: str = "sample"  # sample | dir:<folder> | url:<zip> (+ sha256)
    sha256: str = ""
    train_dir: str = "train"  # <train_dir>/<class>/* inside the source (ignored when train_csv is set)
    valid_dir: str = "valid"  # <valid_dir>/<class>/*
    test_dir: str = "test"  # unlabelled images, flat; relative to the source or absolute
    train_csv: str = ""  # optional `file,label` lists (paths relative to the CSV's folder)
    valid_csv: str = ""
    file_column: str = "file"
    label_column: str = "label"
    classes: list[str] = dataclasses.field(default_factory=list)  # label names in order; [] = sorted folder names
    sample_seed: int = 0
    sample_train_per_class: int = 30
    sample_valid_per_class: int = 20
    sample_test: int = 100


@dataclasses.dataclass
class PrepareParams:
    image_size: int = 32  # every image is resized to image_size × image_size


@dataclasses.dataclass
class ModelParams:
    """One member of the ensemble: `mygo.models.<name>`."""

    arch: str = "cnn"  # cnn | any torchvision classification model (resnet18, efficientnet_b0, convnext_tiny …)
    width: int = 32  # cnn only
    depth: int = 3  # cnn only
    convs_per_block: int = 1  # cnn only
    dropout: float = 0.0  # cnn only
    small_input: bool = False  # torchvision ResNets: 3×3 stride-1 stem, no max-pool (32-pixel images; ~16× compute)
    weights: str = ""  # "" | local weights file | torchvision:<ENUM> (needs internet)
    seed: int = 0


@dataclasses.dataclass
class TrainParams:
    epochs: int = 30
    batch_size: int = 32
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 0.003
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    warmup_epochs: int = 1
    schedule: Literal["cosine", "constant"] = "cosine"
    label_smoothing: float = 0.1
    augment: list[str] = dataclasses.field(default_factory=lambda: ["hflip", "crop", "color_jitter"])
    mixup_alpha: float = 0.0  # 0 = off
    cutmix_alpha: float = 0.0  # 0 = off; with both on, each batch picks one
    patience: int = 0  # early stopping: epochs without a better validation accuracy; 0 = off
    channels_last: bool = True  # GPU only
    bf16: bool = True  # autocast on GPU only


@dataclasses.dataclass
class PredictParams:
    tta: list[str] = dataclasses.field(default_factory=lambda: ["identity", "hflip"])  # views averaged
    ensemble: Literal["logit_sum", "majority_vote"] = "logit_sum"
    batch_size: int = 256


@dataclasses.dataclass
class SubmissionParams:
    id_column: str = "id"
    label_column: str = "label"
    label_format: Literal["name", "index"] = "index"


def _default_models() -> dict[str, ModelParams]:
    """params.yaml's `mygo.models` (cnn_template: the course template's 3 blocks; resnet18: not in the ensemble)."""
    return {
        "cnn": ModelParams(width=32, depth=4, seed=0),
        "cnn_deep": ModelParams(width=24, depth=4, convs_per_block=2, seed=1),
        "cnn_seed2": ModelParams(width=32, depth=4, seed=2),
        "cnn_template": ModelParams(width=32, depth=3, seed=0),
        "resnet18": ModelParams(arch="resnet18", small_input=False, weights="", seed=3),
    }


@dataclasses.dataclass
class MygoParams:
    data: DataParams = dataclasses.field(default_factory=DataParams)
    prepare: PrepareParams = dataclasses.field(default_factory=PrepareParams)
    # names in `models`; one train stage each
    ensemble: list[str] = dataclasses.field(default_factory=lambda: ["cnn", "cnn_deep", "cnn_seed2"])
    models: dict[str, ModelParams] = dataclasses.field(default_factory=_default_models)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    predict: PredictParams = dataclasses.field(default_factory=PredictParams)
    submission: SubmissionParams = dataclasses.field(default_factory=SubmissionParams)

    def model(self, name: str) -> ModelParams:
        """The settings of ensemble member `name`."""
        if name not in self.models:
            raise ParamsError(f"unknown model '{name}' (mygo.models has: {', '.join(self.models)})")
        return self.models[name]

    @validator
    def check(self) -> MygoParams:
        missing = [name for name in self.ensemble if name not in self.models]
        if missing or not self.ensemble:
            raise ParamsError(f"mygo.ensemble must name entries of mygo.models; not found: {missing or '(empty list)'}")
        for name in self.models:
            m = self.model(name)
            check_ranges(m, f"{TASK}.models.{name}", MODEL_RANGES)
            if m.arch == "cnn" and 2**m.depth > self.prepare.image_size:
                raise ParamsError(
                    f"parameter '{TASK}.models.{name}.depth' is {m.depth}: {m.depth} halvings need images of at "
                    f"least {2**m.depth} px, but '{TASK}.prepare.image_size' is {self.prepare.image_size}"
                )
        check_ranges(self, TASK, RANGES)
        check_sha256(self.data.sha256, f"{TASK}.data.sha256")
        return self


class Paths(TaskPaths):
    """Every file the mygo stages read or write, relative to `root` (the repo, or a test's tmp dir)."""

    task = TASK

    @property
    def predictions(self) -> Path:
        return self._p("data", TASK, "predictions")

    def model(self, name: str) -> Path:
        return self._p("models", TASK, f"{name}.pt")

    @property
    def metrics(self) -> Path:
        return self._p("metrics")

    @property
    def submission(self) -> Path:
        return self._p("submissions", TASK, "submission.csv")


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
RANGES = {
    "data.sample_train_per_class": between(1, 100_000), "data.sample_valid_per_class": between(1, 100_000),
    "data.sample_test": between(1, 1_000_000), "prepare.image_size": between(8, 2048),
    "train.epochs": between(1, 100_000), "train.batch_size": between(1, 65_536), "train.lr": above(0),
    "train.weight_decay": at_least(0), "train.momentum": between(0, 1), "train.warmup_epochs": at_least(0),
    "train.label_smoothing": between(0, 1, open_high=True), "train.mixup_alpha": at_least(0),
    "train.cutmix_alpha": at_least(0), "train.patience": at_least(0), "predict.batch_size": between(1, 65_536),
}  # fmt: skip
MODEL_RANGES = {
    "width": between(1, 8192),
    "depth": between(1, 16),
    "convs_per_block": between(1, 64),
    "dropout": PROBABILITY,
}


def load(path: str | Path = "params.yaml") -> tuple[MygoParams, CommonParams]:
    return load_params(TASK, MygoParams, path).check(), load_common(path)


# The course's public baselines (validation accuracy stands in for the hidden test score).
BASELINES = {"simple": 0.45, "medium": 0.70, "strong": 0.83, "boss": 0.94}
