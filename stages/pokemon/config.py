"""Parameters (the `pokemon:` section of params.yaml) and file locations of the pokemon task."""

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
    check_sha256,
    load_common,
    load_params,
    require,
    validator,
)
from stages.common.paths import TaskPaths

TASK = "pokemon"


@dataclasses.dataclass
class DataParams:
    source: str = "sample"  # sample | dir:<folder with pixel_color.txt + colormap.txt> | url:<zip> | hf:<dataset>
    sha256: str = ""  # required with url:
    hf_colormap: str = "lca0503/ml2025-hw4-colormap"  # palette dataset used with hf:
    sample_seed: int = 0


@dataclasses.dataclass
class ModelParams:
    arch: Literal["gpt2", "llama", "mistral", "qwen2"] = "gpt2"
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 2
    d_ff: int = 0  # feed-forward width; 0 = 4 × d_model
    dropout: float = 0.1


@dataclasses.dataclass
class TrainParams:
    epochs: int = 8
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10
    grad_clip: float = 1.0
    select_by: Literal["train_loss", "dev_loss", "classifier"] = "dev_loss"
    max_minutes: float = 0.0  # time budget: stop before an epoch that would not fit; 0 = run every epoch
    mirror: float = 0.0  # probability that a training sprite is seen as its left-right mirror image; 0 = off
    members: int = 1  # models trained one after another (seed + 1000 m); completions sample their mean distribution


# The PDR detector is an instrument: it trains at one thread with the portable kernels (the same bytes on every
# x86-64 CPU: docs/reproducibility.md) whatever `common.threads` and `common.kernels` say, so that a generator run at
# any thread count is judged by the same detector (before, its recall on the real dev sprites moved with the thread
# count: stages/pokemon/README.md, "Five runs of the preset").
DETECTOR_THREADS = 1
DETECTOR_KERNELS = "portable"


@dataclasses.dataclass
class ClassifierParams:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 16
    threshold: float = 0.5  # mean P(pokemon) of the members above which an image counts as detected
    members: int = 8  # networks trained with different seeds; PDR thresholds their mean probability
    translate: int = 1  # each epoch, every real sprite moved by up to this many pixels (rows and columns); 0 = off
    recolor: float = 0.5  # probability that a training image (either class) has its R, G, B channels permuted
    seed: int = 0  # the detector's own: every generator run (any `pokemon.seed`) is judged by the same detector


@dataclasses.dataclass
class PredictParams:
    strategy: Literal["greedy", "sample"] = "greedy"  # greedy: the course's sample code
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 80
    candidates: int = 1  # with `sample`: draw this many completions per prefix, keep the one the model finds likeliest


@dataclasses.dataclass
class EvaluateParams:
    fid_reference_images: int = 240  # real train images in the FID reference; 0 = all
    fid_extractor: Literal["auto", "pytorch-fid", "fid-helper"] = "auto"


@dataclasses.dataclass
class PokemonParams:
    seed: int = 0
    data: DataParams = dataclasses.field(default_factory=DataParams)
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    classifier: ClassifierParams = dataclasses.field(default_factory=ClassifierParams)
    predict: PredictParams = dataclasses.field(default_factory=PredictParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)


class Paths(TaskPaths):
    """Every file the pokemon stages read or write, relative to `root` (the repo, or a test's tmp dir)."""

    task = TASK

    @property
    def predictions(self) -> Path:
        return self._p("data", TASK, "predictions")

    @property
    def fid_reference(self) -> Path:
        return self._p("data", TASK, "fid_reference")

    @property
    def model(self) -> Path:
        return self._p("models", TASK, "model")

    @property
    def classifier(self) -> Path:
        return self._p("models", TASK, "classifier.pt")

    @property
    def metrics(self) -> Path:
        return self._p("metrics")

    @property
    def submission(self) -> Path:
        return self._p("submissions", TASK, "submission.txt")


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
RANGES = {
    "model.d_model": between(1, 8192), "model.n_layer": between(1, 128), "model.n_head": between(1, 128),
    "model.d_ff": between(0, 65_536), "model.dropout": PROBABILITY,
    "train.epochs": between(1, 100_000), "train.batch_size": between(1, 65_536), "train.lr": above(0),
    "train.weight_decay": at_least(0), "train.warmup_steps": between(0, 100_000_000), "train.grad_clip": at_least(0),
    "train.max_minutes": at_least(0), "train.mirror": PROBABILITY, "train.members": between(1, 16),
    "classifier.epochs": between(1, 100_000), "classifier.batch_size": between(1, 65_536), "classifier.lr": above(0),
    "classifier.width": between(1, 4096), "classifier.threshold": Range(0, 1, open_low=True, open_high=True),
    "classifier.members": between(1, 16),
    "classifier.translate": between(0, 4), "classifier.recolor": PROBABILITY,
    "predict.temperature": above(0), "predict.top_k": at_least(0), "predict.top_p": Range(0, 1, open_low=True),
    "predict.batch_size": between(1, 65_536), "predict.candidates": between(1, 64),
    "evaluate.fid_reference_images": between(0, 10_000_000),
}  # fmt: skip


@validator
def validate(p: PokemonParams) -> PokemonParams:
    """Every range and cross-parameter rule, before any stage builds anything."""
    check_ranges(p, TASK, RANGES)
    check_sha256(p.data.sha256, f"{TASK}.data.sha256")
    m = p.model
    require(m.d_model % m.n_head == 0, f"parameter '{TASK}.model.d_model' ({m.d_model}) must be divisible by "
            f"'{TASK}.model.n_head' ({m.n_head})")  # fmt: skip
    rotary = m.arch in ("llama", "mistral", "qwen2")
    require(not rotary or (m.d_model // m.n_head) % 2 == 0, f"parameter '{TASK}.model.d_model' ({m.d_model}) "
            f"/ '{TASK}.model.n_head' ({m.n_head}) must be even for arch {m.arch} (rotary position embeddings)")  # fmt: skip
    require(p.predict.candidates == 1 or p.predict.strategy == "sample", f"parameter '{TASK}.predict.candidates' "
            f"({p.predict.candidates}) needs strategy 'sample': greedy completions are all the same")  # fmt: skip
    require(p.evaluate.fid_reference_images != 1, f"parameter '{TASK}.evaluate.fid_reference_images' is 1; "
            "FID needs at least 2 images (0 = all)")  # fmt: skip
    return p


def load(path: str | Path = "params.yaml") -> tuple[PokemonParams, CommonParams]:
    return validate(load_params(TASK, PokemonParams, path)), load_common(path)


# The course's grading thresholds: (FID at most, PDR at least).
BASELINES = {"simple": (84.5, 0.1), "medium": (81.0, 0.5), "strong": (73.0, 0.85)}


def passes(baseline: str, fid: float, pdr: float) -> bool:
    """Whether FID and PDR pass one of the course's baselines (FID at most its bar, PDR at least its bar)."""
    max_fid, min_pdr = BASELINES[baseline]
    return bool(fid <= max_fid and pdr >= min_pdr)


# The samplers `python -m stages.pokemon.sampling --grid NAME` compares on dev completions (pokemon.predict keys):
# temperature and nucleus, then the chosen nucleus with K draws per prefix of which the likeliest is kept.
SAMPLING_GRIDS = {
    "nucleus": [{"temperature": t, "top_p": top_p} for t in (1.0, 0.9, 0.8) for top_p in (0.9, 0.8, 0.7)],
    "ranked": [{"temperature": 1.0, "top_p": 0.9, "candidates": k} for k in (1, 4, 8, 16)],
}
