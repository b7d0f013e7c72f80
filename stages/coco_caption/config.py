"""Parameters (the `coco-caption:` section of params.yaml) and file locations of the coco-caption task."""

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
    load_common,
    load_params,
    require,
    validator,
)
from stages.common.paths import TaskPaths

TASK = "coco-caption"


@dataclasses.dataclass
class DataParams:
    # sample | dir:<the assignment's coco_captioning/ folder> | dir:<Flickr8k-style folder: images/ + *.token*.txt>
    source: str = "sample"
    sample_images: int = 240  # generated scenes (sample source); 1/5 of them go to val
    sample_seed: int = 0
    flickr_image_size: int = 32  # Flickr images are downscaled to this square before PCA
    flickr_min_count: int = 2  # vocabulary: words seen at least this often in train captions
    feature_dim: int = 512  # PCA dimension of the project-computed features (sample, Flickr)


@dataclasses.dataclass
class PrepareParams:
    seed: int = 42  # the course's run.py
    train_captions: int = 256  # sampled with replacement, as the course's sample_coco_minibatch; course: 1024
    val_captions: int = 128  # course: 1024


@dataclasses.dataclass
class ConfigParams:
    num_heads: int = 2
    num_layers: int = 2
    lr: float = 1e-4


@dataclasses.dataclass
class ModelParams:
    embed_dim: int = 64  # course: 256
    ff_dim: int = 256  # course: 2048
    dropout: float = 0.1
    max_length: int = 30  # positions the model supports, and the greedy sampling length
    activation: Literal["gelu", "relu"] = "gelu"


@dataclasses.dataclass
class TrainParams:
    epochs: int = 15  # course: 100
    batch_size: int = 64  # batches in order, no shuffling (the course's run.py)


@dataclasses.dataclass
class PredictParams:
    strategy: Literal["greedy", "beam"] = "greedy"
    beam_size: int = 3
    samples: int = 4  # train and val images drawn with their captions


def _default_configs() -> dict[str, ConfigParams]:
    return {
        "h2_l2_lr1e-4": ConfigParams(2, 2, 1e-4),
        "h4_l6_lr1e-4": ConfigParams(4, 6, 1e-4),
        "h4_l6_lr1e-3": ConfigParams(4, 6, 1e-3),
    }


@dataclasses.dataclass
class CocoCaptionParams:
    seed: int = 42
    threads: int = 1  # torch CPU threads; 0 = common.threads (1 is fastest for the small models on a busy CPU)
    data: DataParams = dataclasses.field(default_factory=DataParams)
    prepare: PrepareParams = dataclasses.field(default_factory=PrepareParams)
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    predict: PredictParams = dataclasses.field(default_factory=PredictParams)
    # the course's three configurations; the DVC matrix runs one stage per key
    configs: dict[str, ConfigParams] = dataclasses.field(default_factory=_default_configs)

    def config(self, name: str) -> ConfigParams:
        if name not in self.configs:
            raise ParamsError(f"unknown configuration '{name}' (coco-caption.configs: {', '.join(self.configs)})")
        return self.configs[name]


# The course's expected final train loss per configuration.
TARGET_LOSS = {"h2_l2_lr1e-4": 1.0, "h4_l6_lr1e-4": 0.3, "h4_l6_lr1e-3": 0.05}


class Paths(TaskPaths):
    """Every file the coco_caption stages read or write, beyond the shared ones in TaskPaths."""

    task = TASK

    def model(self, config: str) -> Path:
        return self._p("models", TASK, f"{config}.pt")

    def predictions(self, config: str) -> Path:
        return self._p("data", TASK, "predictions", f"{config}.json")

    def train_metrics(self, config: str) -> Path:
        return self._p("metrics", f"{TASK}_train_{config}.json")

    @property
    def metrics(self) -> Path:
        return self._p("metrics", f"{TASK}.json")


def load(path: str | Path = "params.yaml") -> tuple[CocoCaptionParams, CommonParams]:
    p = load_params(TASK, CocoCaptionParams, path)
    if not p.configs:
        raise ParamsError("'coco-caption.configs' must be a non-empty mapping of name -> {num_heads, num_layers, lr}")
    return validate(p), load_common(path)


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
RANGES = {
    "threads": between(0, 1024),
    "data.sample_images": between(5, 1_000_000),
    "data.flickr_image_size": between(1, 512),  # pixels × 3 are the PCA's input dimension
    "data.flickr_min_count": at_least(1), "data.feature_dim": between(1, 65_536),
    "prepare.train_captions": between(1, 10_000_000), "prepare.val_captions": between(1, 10_000_000),
    "model.embed_dim": between(1, 8192), "model.ff_dim": between(1, 65_536), "model.dropout": PROBABILITY,
    "model.max_length": between(1, 4096),
    "train.epochs": between(1, 100_000), "train.batch_size": between(1, 65_536),
    "predict.beam_size": between(1, 1000), "predict.samples": between(0, 10_000),
}  # fmt: skip
CONFIG_RANGES = {"num_heads": between(1, 128), "num_layers": between(1, 128), "lr": above(0)}


@validator
def validate(p: CocoCaptionParams) -> CocoCaptionParams:
    """Every range and cross-parameter rule (each configuration's too), before any stage builds anything."""
    check_ranges(p, TASK, RANGES)
    for name, c in p.configs.items():
        check_ranges(c, f"{TASK}.configs.{name}", CONFIG_RANGES)
        require(p.model.embed_dim % c.num_heads == 0, f"parameter '{TASK}.model.embed_dim' ({p.model.embed_dim}) "
                f"must be divisible by '{TASK}.configs.{name}.num_heads' ({c.num_heads})")  # fmt: skip
    return p
