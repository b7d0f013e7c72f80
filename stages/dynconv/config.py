"""Parameters (the `dynconv:` section of params.yaml) and file locations of the dynconv task (seed 004 §II).

Two models on the same small ResNet-style backbone, trained from scratch on the shared mini-ImageNet data
(data/mini-imagenet/prepared, from the `mini-imagenet-*` stages): `dynamic` (the first convolution is
generated from which input channels are present: attention over K candidate kernels) and `naive` (a plain
3-channel first convolution, missing channels zero-filled). Random channel-subset training is a param of
each model (`dynconv.models.<model>.channel_sampling`), so the module and the training scheme separate.
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
    between,
    check_ranges,
    load_common,
    load_params,
    require,
    validator,
)
from stages.common.paths import TaskPaths

TASK = "dynconv"
DATA_TASK = "mini-imagenet"  # the shared data stages this task consumes
MODELS = ("dynamic", "naive")
CHANNELS = "RGB"
SUBSETS = ("RGB", "RG", "RB", "GB", "R", "G", "B")  # every non-empty subset of {R, G, B}
SINGLE = ("R", "G", "B")
REAL_PRESET = "real64-30"  # of presets/dynconv.yaml: the real-data runs the report renders (measured/)

# The targets on ../shared/data/mini_imagenet (3,000 training images).
TARGETS = {
    "worst_single_over_rgb_min": 0.90,  # dynamic: worst single-channel accuracy ≥ 90 % of its RGB accuracy
    "rgb_gap_max": 0.02,  # dynamic RGB accuracy within 2 points of naive RGB accuracy
    "dynamic_flops_share_max": 0.05,  # the dynamic module adds ≤ 5 % FLOPs
}
# Peers (the issue): zero-filled naive models fall to chance (≈ 2 % of 50 classes) on one channel;
# the best from-scratch peer holds 46–50 % across subsets on the full 63k-image set.

# none = always RGB | hierarchical | uniform: a random subset per training image | one fixed subset (RG … B):
# a dedicated model for that subset, the "one model per channel combination" alternative of the cost analysis
Sampling = Literal["none", "hierarchical", "uniform", "RG", "RB", "GB", "R", "G", "B"]
RANDOM_SAMPLING = ("hierarchical", "uniform")  # the schemes that draw a subset per image


@dataclasses.dataclass
class BackboneParams:
    width: int = 16  # channels of the first conv and the first stage; doubles every stage
    blocks: list[int] = dataclasses.field(default_factory=lambda: [1, 1, 1])  # torchvision BasicBlocks per stage
    stem_stride: int = 1  # stride of the first conv (2 for ≥ 64 px inputs)
    dropout: float = 0.0


@dataclasses.dataclass
class DynamicParams:
    # none = always RGB | hierarchical = subset size uniform in {1, 2, 3}, then the subset (ChannelViT)
    # | uniform = uniform over the 7 subsets, drawn per training image | RG … B = always that subset
    channel_sampling: Sampling = "hierarchical"
    kernels: int = 4  # K candidate kernels (Dynamic Convolution uses 4)
    hidden: int = 32  # hidden units of the attention MLP
    pooled_attention: bool = True  # attention also sees the present channels' mean (Chen et al.'s input-dependence)
    temperature: float = 1.0  # softmax temperature of the attention over kernels
    redistribute: bool = True  # share the absent channels' kernel columns out over the present ones


@dataclasses.dataclass
class NaiveParams:
    channel_sampling: Sampling = "none"  # the sheet's naive model: trained on RGB, zero-filled at test time
    # (R, G, B, …: a dedicated model for that subset, what storing 7 models would give)


@dataclasses.dataclass
class ModelsParams:
    dynamic: DynamicParams = dataclasses.field(default_factory=DynamicParams)
    naive: NaiveParams = dataclasses.field(default_factory=NaiveParams)


@dataclasses.dataclass
class TrainParams:
    epochs: int = 12
    runs: int = 2  # independent runs (seeds seed, seed+1, …) per model: the run-to-run spread
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    consistency: float = 0.0  # weight of KL(prediction on the image's subset ‖ prediction on its RGB), RGB detached
    random_crop: int = 2  # pad by this many pixels and crop back (0 = off)
    flip: bool = True


@dataclasses.dataclass
class EvaluateParams:
    second_size: int = 48  # a second test resolution (the raw test images resized to it): spatial invariance
    batch_size: int = 100
    timing_batches: int = 3  # forward passes timed for CPU ms/image (timings/dynconv-evaluate.json)


@dataclasses.dataclass
class DynconvParams:
    seed: int = 0
    backbone: BackboneParams = dataclasses.field(default_factory=BackboneParams)
    models: ModelsParams = dataclasses.field(default_factory=ModelsParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)

    def model(self, name: str) -> DynamicParams | NaiveParams:
        if name not in MODELS:
            raise ParamsError(f"unknown dynconv model '{name}' (use one of {', '.join(MODELS)})")
        return getattr(self.models, name)

    @validator
    def check_model(self, name: str) -> DynconvParams:
        """Ranges of what training `name` reads (backbone, models.<name>, train)."""
        check_ranges(self, TASK, MODEL_RANGES)
        require(1 <= len(self.backbone.blocks) <= 6, f"parameter '{TASK}.backbone.blocks' is "
                f"{self.backbone.blocks}; expected 1-6 stages")  # fmt: skip
        if isinstance(self.model(name), DynamicParams):
            check_ranges(self, TASK, DYNAMIC_RANGES)
        return self

    @validator
    def check_evaluate(self) -> DynconvParams:
        check_ranges(self, TASK, EVALUATE_RANGES)
        return self


MODEL_RANGES = {
    "backbone.width": between(1, 512), "backbone.blocks": between(1, 8), "backbone.stem_stride": between(1, 2),
    "backbone.dropout": PROBABILITY,
    "train.epochs": between(1, 10_000), "train.runs": between(1, 20), "train.batch_size": between(1, 65_536),
    "train.random_crop": between(0, 64), "train.lr": Range(0, 10, open_low=True), "train.weight_decay": between(0, 1),
    "train.label_smoothing": PROBABILITY,
    "train.consistency": between(0, 100),
}  # fmt: skip
DYNAMIC_RANGES = {
    "models.dynamic.kernels": between(1, 64), "models.dynamic.hidden": between(1, 4096),
    "models.dynamic.temperature": above(0),
}  # fmt: skip
EVALUATE_RANGES = {
    "evaluate.second_size": between(8, 1024), "evaluate.batch_size": between(1, 65_536),
    "evaluate.timing_batches": between(1, 1000),
}  # fmt: skip


class Paths(TaskPaths):
    """dynconv's files; its data are the shared mini-ImageNet stages' outputs."""

    task = TASK

    @property
    def raw(self) -> Path:
        return self._p("data", DATA_TASK, "raw")

    @property
    def prepared(self) -> Path:
        return self._p("data", DATA_TASK, "prepared")

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
    def real_data(self) -> Path:
        """The recorded real-data run of REAL_PRESET (stages/common/record.py), read by the package stage."""
        return self._p("measured", f"{TASK}_{REAL_PRESET}.json")

    @property
    def dedicated(self) -> Path:
        """Dedicated one-subset models under REAL_PRESET (stages/common/record.py), read by the package stage."""
        return self._p("measured", f"{TASK}_{REAL_PRESET}-dedicated.json")

    @property
    def subsets_csv(self) -> Path:
        return self._p("plots", TASK, "subsets.csv")


def load(path: str | Path = "params.yaml") -> tuple[DynconvParams, CommonParams]:
    """Types checked here; each stage checks the ranges of the keys it reads before building anything."""
    return load_params(TASK, DynconvParams, path), load_common(path)
