"""Parameters (the `twolayer:` section of params.yaml) and file locations of the twolayer task.

The data is the shared mini-ImageNet pipeline (`mini-imagenet-download`, `mini-imagenet-prepare`,
section `mini-imagenet:`); this task only reads its prepared arrays.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import (
    PROBABILITY,
    CommonParams,
    ParamsError,
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

TASK = "twolayer"
MODELS = ("twolayer", "resnet34")  # the DVC matrix of twolayer-train
MAIN_LAYER_KINDS = ("hybrid", "attention", "rrdb", "conv")

# The sheet's limits (seed 004 §III): at most two main layers, at most 4 layers with input and output.
MAX_MAIN_LAYERS = 2
MAX_LAYERS = 4
# The assignment's bar: the two-layer network reaches ≥ 90 % of ResNet34's test accuracy.
RATIO_BAR = 0.90
CI_LEVEL = 0.95  # the ratio's interval: paired bootstrap over the test images (stages/common/stats.py)
CI_RESAMPLES = 4000
# The real-data preset (presets/twolayer.yaml) whose recorded runs the report and README give: measured/twolayer_<it>*.json
REAL_PRESET = "real30"
# The rounds of its choice, in order (measured/twolayer_<REAL_PRESET>_<round>.json): each round's candidates start
# from the earlier rounds' winners (round 1: the patch; round 2: the main layers' kind and width).
CHOICE_ROUNDS = ("choice", "choice2")
# Its budget (issue 31): each model trains within this many minutes on the CPU that records the choice; a
# candidate over it is not chosen, whatever its validation accuracy.
BUDGET_MINUTES = 30
# Peers on the course's full data (50 classes, 63k train images), for the report.
PEERS = {"resnet34_from_scratch": (0.538, 0.678), "best_two_layer": 0.5756, "its_resnet34": 0.6022}


@dataclasses.dataclass
class TwoLayerModelParams:
    """The two-layer network: input layer (patch embedding) → `main_layers` main layers → output layer."""

    kind: Literal["hybrid", "attention", "rrdb", "conv"] = "hybrid"
    main_layers: int = 2  # 1 or 2 (the sheet allows at most 2)
    dim: int = 128  # channels of the token map
    patch: int = 4  # stride of the input layer (tokens are patch × patch pixels)
    stem_kernel: int = 7  # kernel of the input layer's convolution (≥ patch: overlapping patches)
    heads: int = 4  # attention heads (hybrid, attention)
    mlp_ratio: float = 2.0  # MLP width / dim inside a main layer (hybrid, attention)
    dw_kernel: int = 7  # depthwise kernel inside a hybrid / conv main layer
    growth: int = 16  # rrdb: channels each dense convolution adds
    dense_blocks: int = 3  # rrdb: dense blocks in one residual-in-residual block (ESRGAN: 3)
    dense_convs: int = 5  # rrdb: convolutions per dense block (ESRGAN: 5)
    dropout: float = 0.1  # before the output layer


@dataclasses.dataclass
class ResNetParams:
    # imagenet: torchvision's resnet34 unchanged (7×7/2 conv + max-pool); cifar: 3×3/1 conv, no max-pool
    stem: Literal["imagenet", "cifar"] = "imagenet"


@dataclasses.dataclass
class AugmentParams:
    """The same for both models."""

    crop_pad: float = 0.125  # random crop after padding by this fraction of the image side (0 = off)
    flip: bool = True  # random horizontal flip
    label_smoothing: float = 0.1


@dataclasses.dataclass
class TrainParams:
    """The same schedule and budget for both models."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1  # linear warmup, then cosine decay to 0
    image_size: int = 0  # train and evaluate at this side (resized from the prepared arrays); 0 = as prepared
    max_train_per_class: int = 0  # 0 = all prepared train images; otherwise the first N of each class


@dataclasses.dataclass
class EvaluateParams:
    timing_images: int = 32  # images for the CPU ms/image measurement (batch 1, one thread)
    timing_repeats: int = 2  # best of this many passes


@dataclasses.dataclass
class TwolayerParams:
    seed: int = 0
    threads: int = 1  # torch CPU threads; 0 = common.threads
    twolayer: TwoLayerModelParams = dataclasses.field(default_factory=TwoLayerModelParams)
    resnet34: ResNetParams = dataclasses.field(default_factory=ResNetParams)
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)


@validator
def validate(p: TwolayerParams, model: str = "", evaluate: bool = False) -> TwolayerParams:
    """Range checks, before anything is built; each error names the key. Checks `threads`, the keys training
    reads (`augment`, `train`, and `twolayer` unless model == "resnet34") and, with `evaluate`, `evaluate`."""
    check_ranges(p, TASK, {"threads": between(0, 1024)})
    if evaluate:
        check_ranges(p, TASK, EVALUATE_RANGES)
        return p
    if model != "resnet34":
        m = p.twolayer
        check_ranges(p, TASK, TWOLAYER_RANGES)
        require(m.stem_kernel >= m.patch, f"parameter '{TASK}.twolayer.stem_kernel' must be ≥ {TASK}.twolayer.patch")
        require(m.dim % m.heads == 0, f"parameter '{TASK}.twolayer.heads' must divide {TASK}.twolayer.dim")
        require(m.dw_kernel % 2 == 1, f"parameter '{TASK}.twolayer.dw_kernel' must be odd")
    check_ranges(p, TASK, TRAIN_RANGES)
    t = p.train
    require(t.warmup_epochs <= t.epochs, f"parameter '{TASK}.train.warmup_epochs' must be in 0..epochs")
    require(
        t.image_size == 0 or t.image_size >= 16, f"parameter '{TASK}.train.image_size' must be 0 (as prepared) or ≥ 16"
    )
    return p


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
EVALUATE_RANGES = {"evaluate.timing_images": between(1, 100_000), "evaluate.timing_repeats": between(1, 1000)}
TWOLAYER_RANGES = {
    "twolayer.main_layers": between(1, MAX_MAIN_LAYERS), "twolayer.dim": between(4, 8192),
    "twolayer.patch": between(1, 256), "twolayer.stem_kernel": between(1, 256),
    "twolayer.heads": between(1, 128), "twolayer.mlp_ratio": Range(0, 64, open_low=True),
    "twolayer.dw_kernel": between(1, 255), "twolayer.growth": between(1, 4096),
    "twolayer.dense_blocks": between(1, 64), "twolayer.dense_convs": between(2, 64),
    "twolayer.dropout": PROBABILITY,
}  # fmt: skip
TRAIN_RANGES = {
    "augment.crop_pad": PROBABILITY, "augment.label_smoothing": PROBABILITY,
    "train.epochs": between(1, 100_000), "train.batch_size": between(1, 65_536), "train.lr": above(0),
    "train.weight_decay": at_least(0), "train.warmup_epochs": at_least(0), "train.image_size": between(0, 2048),
    "train.max_train_per_class": between(0, 100_000_000),
}  # fmt: skip


def check_model(name: str) -> str:
    if name not in MODELS:
        raise ParamsError(f"unknown model '{name}' (twolayer-train runs one of: {', '.join(MODELS)})")
    return name


class Paths(TaskPaths):
    """Every file the twolayer stages read or write, beyond the shared ones in TaskPaths."""

    task = TASK

    @property
    def data(self) -> Path:
        """The shared prepared mini-ImageNet arrays (written by mini-imagenet-prepare)."""
        return self._p("data", "mini-imagenet", "prepared")

    def model(self, name: str) -> Path:
        return self._p("models", TASK, f"{name}.pt")

    def train_metrics(self, name: str) -> Path:
        return self._p("metrics", f"{TASK}_train_{name}.json")

    def history(self, name: str) -> Path:
        return self._p("plots", TASK, f"train_{name}.csv")

    @property
    def metrics(self) -> Path:
        return self._p("metrics", f"{TASK}.json")

    @property
    def ablations(self) -> Path:
        """Recorded `dvc exp run` ablations (stages/twolayer/ablate.py), read by the package stage."""
        return self._p("reports", f"{TASK}_ablations.json")

    @property
    def real_data(self) -> Path:
        """The real-data result: the chosen preset's `dvc exp run`s, one per seed (stages/common/record.py)."""
        return self._p("measured", f"{TASK}_{REAL_PRESET}.json")

    @property
    def real_choices(self) -> list[Path]:
        """The rounds of candidates the real-data preset was chosen from, on validation accuracy
        (stages/common/record.py)."""
        return [self._p("measured", f"{TASK}_{REAL_PRESET}_{r}.json") for r in CHOICE_ROUNDS]


def load(path: str | Path = "params.yaml") -> tuple[TwolayerParams, CommonParams]:
    """Types of every key checked here; each stage checks the ranges of the keys it reads (`validate`)."""
    return load_params(TASK, TwolayerParams, path), load_common(path)
