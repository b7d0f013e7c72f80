"""Parameters (the `twolayer:` section of params.yaml) and file locations of the twolayer task.

The data is the shared mini-ImageNet pipeline (`mini-imagenet-download`, `mini-imagenet-prepare`,
section `mini-imagenet:`); this task only reads its prepared arrays.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import CommonParams, ParamsError, load_params
from stages.common.paths import TaskPaths

TASK = "twolayer"
MODELS = ("twolayer", "resnet34")  # the DVC matrix of twolayer-train
MAIN_LAYER_KINDS = ("hybrid", "attention", "rrdb", "conv")

# The sheet's limits (seed 004 §III): at most two main layers, at most 4 layers with input and output.
MAX_MAIN_LAYERS = 2
MAX_LAYERS = 4
# The assignment's bar: the two-layer network reaches ≥ 90 % of ResNet34's test accuracy.
RATIO_BAR = 0.90
# Peers on the course's full data (50 classes, 63k train images), for the report.
PEERS = {"resnet34_from_scratch": (0.538, 0.678), "best_two_layer": 0.5756, "its_resnet34": 0.6022}


@dataclasses.dataclass
class TwoLayerModelParams:
    """The two-layer network: input layer (patch embedding) → `main_layers` main layers → output layer."""

    kind: Literal["hybrid", "attention", "rrdb", "conv"] = "hybrid"
    main_layers: int = 2  # 1 or 2 (the sheet allows at most 2)
    dim: int = 48  # channels of the token map
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
    threads: int = 0  # 0 = common.threads
    twolayer: TwoLayerModelParams = dataclasses.field(default_factory=TwoLayerModelParams)
    resnet34: ResNetParams = dataclasses.field(default_factory=ResNetParams)
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)


def validate(p: TwolayerParams, model: str = "", evaluate: bool = False) -> TwolayerParams:
    """Range checks, before anything is built; each error names the key. Checks `threads`, the keys training
    reads (`augment`, `train`, and `twolayer` unless model == "resnet34") and, with `evaluate`, `evaluate`."""
    checks = [(p.threads >= 0, "twolayer.threads", "must be ≥ 0")]
    if evaluate:  # each group is read only when checked (the stage contract records what a stage reads)
        e = p.evaluate
        checks += [
            (e.timing_images >= 1, "twolayer.evaluate.timing_images", "must be ≥ 1"),
            (e.timing_repeats >= 1, "twolayer.evaluate.timing_repeats", "must be ≥ 1"),
        ]
        return _raise_first(checks, p)
    if model != "resnet34":
        m = p.twolayer
        checks += [
            (1 <= m.main_layers <= MAX_MAIN_LAYERS, "twolayer.twolayer.main_layers", f"must be 1 or {MAX_MAIN_LAYERS}"),
            (m.dim >= 4, "twolayer.twolayer.dim", "must be ≥ 4"),
            (m.patch >= 1, "twolayer.twolayer.patch", "must be ≥ 1"),
            (m.stem_kernel >= m.patch, "twolayer.twolayer.stem_kernel", "must be ≥ twolayer.twolayer.patch"),
            (m.heads >= 1 and m.dim % m.heads == 0, "twolayer.twolayer.heads", "must be ≥ 1 and divide dim"),
            (m.mlp_ratio > 0, "twolayer.twolayer.mlp_ratio", "must be > 0"),
            (m.dw_kernel >= 1 and m.dw_kernel % 2 == 1, "twolayer.twolayer.dw_kernel", "must be odd and ≥ 1"),
            (m.growth >= 1, "twolayer.twolayer.growth", "must be ≥ 1"),
            (m.dense_blocks >= 1, "twolayer.twolayer.dense_blocks", "must be ≥ 1"),
            (m.dense_convs >= 2, "twolayer.twolayer.dense_convs", "must be ≥ 2"),
            (0 <= m.dropout < 1, "twolayer.twolayer.dropout", "must be in [0, 1)"),
        ]
    t, a = p.train, p.augment
    checks += [
        (0 <= a.crop_pad < 1, "twolayer.augment.crop_pad", "must be in [0, 1)"),
        (0 <= a.label_smoothing < 1, "twolayer.augment.label_smoothing", "must be in [0, 1)"),
        (t.epochs >= 1, "twolayer.train.epochs", "must be ≥ 1"),
        (t.batch_size >= 1, "twolayer.train.batch_size", "must be ≥ 1"),
        (t.lr > 0, "twolayer.train.lr", "must be > 0"),
        (t.weight_decay >= 0, "twolayer.train.weight_decay", "must be ≥ 0"),
        (0 <= t.warmup_epochs <= t.epochs, "twolayer.train.warmup_epochs", "must be in 0..epochs"),
        (t.image_size == 0 or t.image_size >= 16, "twolayer.train.image_size", "must be 0 (as prepared) or ≥ 16"),
        (t.max_train_per_class >= 0, "twolayer.train.max_train_per_class", "must be ≥ 0"),
    ]
    return _raise_first(checks, p)


def _raise_first(checks: list, p: TwolayerParams) -> TwolayerParams:
    for ok, key, what in checks:
        if not ok:
            raise ParamsError(f"parameter '{key}' {what}")
    return p


def threads(p: TwolayerParams, common: CommonParams) -> int:
    """`twolayer.threads`, or `common.threads` when 0 (both read, so both are declared)."""
    fallback = common.threads
    return p.threads or fallback


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
        """Recorded `dvc exp run` ablations (benchmarks/twolayer_ablations.py), read by the package stage."""
        return self._p("reports", f"{TASK}_ablations.json")

    @property
    def real_data(self) -> Path:
        """The recorded real-data run (benchmarks/twolayer_real.py), read by the package stage."""
        return self._p("reports", f"{TASK}_real.json")


def load(path: str | Path = "params.yaml") -> tuple[TwolayerParams, CommonParams]:
    """Types of every key checked here; each stage checks the ranges of the keys it reads (`validate`)."""
    return load_params(TASK, TwolayerParams, path), load_params("common", CommonParams, path)
