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

from stages.common.params import CommonParams, ParamsError, load_params
from stages.common.paths import TaskPaths

TASK = "dynconv"
DATA_TASK = "mini-imagenet"  # the shared data stages this task consumes
MODELS = ("dynamic", "naive")
CHANNELS = "RGB"
SUBSETS = ("RGB", "RG", "RB", "GB", "R", "G", "B")  # every non-empty subset of {R, G, B}
SINGLE = ("R", "G", "B")

# The targets on ../shared/data/mini_imagenet (3,000 training images).
TARGETS = {
    "worst_single_over_rgb_min": 0.90,  # dynamic: worst single-channel accuracy ≥ 90 % of its RGB accuracy
    "rgb_gap_max": 0.02,  # dynamic RGB accuracy within 2 points of naive RGB accuracy
    "dynamic_flops_share_max": 0.05,  # the dynamic module adds ≤ 5 % FLOPs
}
# Peers (the issue): zero-filled naive models fall to chance (≈ 2 % of 50 classes) on one channel;
# the best from-scratch peer holds 46–50 % across subsets on the full 63k-image set.

Sampling = Literal["none", "hierarchical", "uniform"]


@dataclasses.dataclass
class BackboneParams:
    width: int = 16  # channels of the first conv and the first stage; doubles every stage
    blocks: list[int] = dataclasses.field(default_factory=lambda: [1, 1, 1])  # torchvision BasicBlocks per stage
    stem_stride: int = 1  # stride of the first conv (2 for ≥ 64 px inputs)
    dropout: float = 0.0


@dataclasses.dataclass
class DynamicParams:
    # none = always RGB | hierarchical = subset size uniform in {1, 2, 3}, then the subset (ChannelViT)
    # | uniform = uniform over the 7 subsets; drawn per training image
    channel_sampling: Sampling = "hierarchical"
    kernels: int = 4  # K candidate kernels (Dynamic Convolution uses 4)
    hidden: int = 32  # hidden units of the attention MLP
    pooled_attention: bool = True  # attention also sees the present channels' mean (Chen et al.'s input-dependence)
    temperature: float = 1.0  # softmax temperature of the attention over kernels
    redistribute: bool = True  # share the absent channels' kernel columns out over the present ones


@dataclasses.dataclass
class NaiveParams:
    channel_sampling: Sampling = "none"  # the sheet's naive model: trained on RGB, zero-filled at test time


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

    def check_model(self, name: str) -> DynconvParams:
        """Ranges of what training `name` reads (backbone, models.<name>, train, seed)."""
        b, t = self.backbone, self.train
        if not 1 <= b.width <= 512:
            raise ParamsError(f"parameter 'dynconv.backbone.width' is {b.width}; expected 1..512")
        if not 1 <= len(b.blocks) <= 6 or any(not 1 <= n <= 8 for n in b.blocks):
            raise ParamsError(f"parameter 'dynconv.backbone.blocks' is {b.blocks}; expected 1–6 stages of 1..8 blocks")
        if b.stem_stride not in (1, 2):
            raise ParamsError(f"parameter 'dynconv.backbone.stem_stride' is {b.stem_stride}; expected 1 or 2")
        if not 0 <= b.dropout < 1:
            raise ParamsError(f"parameter 'dynconv.backbone.dropout' is {b.dropout}; expected 0 ≤ dropout < 1")
        m = self.model(name)
        if isinstance(m, DynamicParams):
            if not 1 <= m.kernels <= 64:
                raise ParamsError(f"parameter 'dynconv.models.dynamic.kernels' is {m.kernels}; expected 1..64")
            if not 1 <= m.hidden <= 4096:
                raise ParamsError(f"parameter 'dynconv.models.dynamic.hidden' is {m.hidden}; expected 1..4096")
            if not m.temperature > 0:
                raise ParamsError(f"parameter 'dynconv.models.dynamic.temperature' is {m.temperature}; expected > 0")
        for key, low, high in (
            ("epochs", 1, 10_000),
            ("runs", 1, 20),
            ("batch_size", 1, 65_536),
            ("random_crop", 0, 64),
        ):
            if not low <= getattr(t, key) <= high:
                raise ParamsError(f"parameter 'dynconv.train.{key}' is {getattr(t, key)}; expected {low}..{high}")
        if not 0 < t.lr <= 10:
            raise ParamsError(f"parameter 'dynconv.train.lr' is {t.lr}; expected 0 < lr ≤ 10")
        if not 0 <= t.weight_decay <= 1 or not 0 <= t.label_smoothing < 1:
            raise ParamsError(
                "parameters 'dynconv.train.weight_decay' (0..1) and 'label_smoothing' (0..<1) out of range"
            )
        return self

    def check_evaluate(self) -> DynconvParams:
        e = self.evaluate
        if not 8 <= e.second_size <= 1024:
            raise ParamsError(f"parameter 'dynconv.evaluate.second_size' is {e.second_size}; expected 8..1024")
        if not 1 <= e.batch_size <= 65_536 or not 1 <= e.timing_batches <= 1000:
            raise ParamsError(
                "parameters 'dynconv.evaluate.batch_size' (1..65536), 'timing_batches' (1..1000) out of range"
            )
        return self


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
    def subsets_csv(self) -> Path:
        return self._p("plots", TASK, "subsets.csv")


def load(path: str | Path = "params.yaml") -> tuple[DynconvParams, CommonParams]:
    """Types checked here; each stage checks the ranges of the keys it reads before building anything."""
    return load_params(TASK, DynconvParams, path), load_params("common", CommonParams, path)
