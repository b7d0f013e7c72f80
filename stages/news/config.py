"""Parameters (the `news:` section of params.yaml) and file locations of the news task."""

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

TASK = "news"


@dataclasses.dataclass
class DataParams:
    # sample | dir:<folder> with the course's News_train.json/News_test.json[/submission.csv],
    # or AG News CSV (original `"1","title","description"` or Hugging Face `"text",0`) | url:<archive>
    source: str = "sample"
    sha256: str = ""  # required with url:
    text_fields: list[str] = dataclasses.field(default_factory=lambda: ["text"])  # joined with a space
    label_field: str = "label"
    id_field: str = "id"  # test rows without it are numbered in file order (or take submission.csv's ids)
    classes: list[str] = dataclasses.field(default_factory=list)  # allowed labels; [] = those seen in train
    drop_train_overlap: bool = True  # drop train rows whose text is also in a labelled dev/test split
    sample_train: int = 3000
    sample_test: int = 400
    sample_label_noise: float = 0.05
    sample_seed: int = 0


@dataclasses.dataclass
class PrepareParams:
    tokenizer: Literal["wordpunct", "treebank", "bpe"] = "wordpunct"
    lowercase: bool = True
    mask_numbers: bool = True  # every run of digits -> "0"
    min_freq: int = 2
    max_vocab: int = 20000  # including the special tokens
    bpe_merges: int = 2000  # with tokenizer: bpe
    max_len: int = 64  # tokens per text including [CLS]; longer texts are truncated
    val_fraction: float = 0.15  # stratified hold-out of train, when the source has no dev split
    seed: int = 0


@dataclasses.dataclass
class ModelParams:
    d_model: int = 64
    nhead: int = 4
    d_hid: int = 128
    nlayers: int = 2
    dropout: float = 0.1
    max_len: int = 64  # positions the model supports (≥ news.prepare.max_len)
    pos_encoding: Literal["sinusoidal", "learned"] = "sinusoidal"
    norm_first: bool = True  # pre-LN; false = post-LN as in the 2017 paper
    pooling: Literal["cls", "mean", "max"] = "mean"
    attention: Literal["own", "sdpa"] = "own"  # sdpa = torch.nn.functional.scaled_dot_product_attention
    embedding_init: Literal["random", "word2vec", "fasttext"] = "random"  # gensim, trained on the train texts
    token_dropout: float = 0.0  # training only: each word token becomes [UNK] with this probability


@dataclasses.dataclass
class TrainParams:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1  # of all steps; then cosine decay to 0
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    patience: int = 4  # stop after this many epochs without a better validation accuracy; 0 = never
    embedding_epochs: int = 5  # Word2Vec/FastText epochs with embedding_init != random
    embedding_window: int = 5  # their context window (words each side)
    embedding_lr_scale: float = 1.0  # the token embedding learns at lr × this (0 = frozen, e.g. word2vec vectors)
    ema: float = 0.0  # > 0: evaluate and keep an exponential moving average of the weights (decay per step)
    members: int = 1  # a seed ensemble: this many models (seeds news.seed, news.seed+1, ...), probabilities averaged


@dataclasses.dataclass
class PredictParams:
    batch_size: int = 256


@dataclasses.dataclass
class EvaluateParams:
    # the strong cheap baseline: TF-IDF of word 1..baseline_ngrams-grams (scikit-learn's own tokenisation of
    # the raw texts, every n-gram of the train texts) + L2 logistic regression, on the Transformer's train rows
    baseline_ngrams: int = 2
    baseline_c: float = 10.0  # inverse regularisation strength of the logistic regression


@dataclasses.dataclass
class SubmissionParams:
    id_column: str = ""  # "" = the header of the course's submission.csv when given, else "id"
    label_column: str = ""  # "" = as above, else "label"


@dataclasses.dataclass
class NewsParams:
    seed: int = 0
    threads: int = (
        1  # torch CPU threads for the news stages; 0 = common.threads. 1 is fastest for the small sample model
    )
    data: DataParams = dataclasses.field(default_factory=DataParams)
    prepare: PrepareParams = dataclasses.field(default_factory=PrepareParams)
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    predict: PredictParams = dataclasses.field(default_factory=PredictParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)
    submission: SubmissionParams = dataclasses.field(default_factory=SubmissionParams)


class Paths(TaskPaths):
    """Every file the news stages read or write, relative to `root` (the repo, or a test's tmp dir)."""

    task = TASK

    @property
    def predictions(self) -> Path:
        return self._p("data", TASK, "predictions")

    @property
    def model(self) -> Path:
        return self._p("models", TASK, "model.pt")

    @property
    def metrics(self) -> Path:
        return self._p("metrics")

    @property
    def submission(self) -> Path:
        return self._p("submissions", TASK, "submission.csv")


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
RANGES = {
    "threads": between(0, 1024),
    "data.sample_train": between(1, 1_000_000), "data.sample_test": between(1, 1_000_000),
    "data.sample_label_noise": between(0, 1),
    "prepare.min_freq": at_least(1), "prepare.max_vocab": between(3, 1_000_000), "prepare.bpe_merges": between(0, 1_000_000),
    "prepare.max_len": between(2, 4096), "prepare.val_fraction": Range(0, 1, open_low=True, open_high=True),
    "model.d_model": between(1, 8192), "model.nhead": between(1, 128), "model.d_hid": between(1, 65_536),
    "model.nlayers": between(1, 128), "model.dropout": PROBABILITY, "model.max_len": between(2, 4096),
    "model.token_dropout": between(0, 1, open_high=True),
    "train.epochs": between(1, 100_000), "train.batch_size": between(1, 65_536), "train.lr": above(0),
    "train.weight_decay": at_least(0), "train.warmup_fraction": between(0, 1, open_high=True),
    "train.label_smoothing": between(0, 1, open_high=True), "train.grad_clip": at_least(0),
    "train.patience": between(0, 100_000), "train.embedding_epochs": between(1, 100_000),
    "train.embedding_window": between(1, 1000), "train.members": between(1, 100),
    "train.ema": between(0, 1, open_high=True), "train.embedding_lr_scale": at_least(0),
    "predict.batch_size": between(1, 65_536),
    "evaluate.baseline_ngrams": between(1, 5),  # every n-gram of the train texts is a feature
    "evaluate.baseline_c": above(0),
}  # fmt: skip


@validator
def validate(p: NewsParams) -> NewsParams:
    """Every range and cross-parameter rule, before any stage builds anything."""
    check_ranges(p, TASK, RANGES)
    check_sha256(p.data.sha256, f"{TASK}.data.sha256")
    m = p.model
    require(m.d_model % m.nhead == 0, f"parameter '{TASK}.model.d_model' ({m.d_model}) must be divisible by "
            f"'{TASK}.model.nhead' ({m.nhead})")  # fmt: skip
    require(p.prepare.max_len <= m.max_len, f"parameter '{TASK}.prepare.max_len' ({p.prepare.max_len}) exceeds "
            f"'{TASK}.model.max_len' ({m.max_len})")  # fmt: skip
    require(bool(p.data.text_fields), f"parameter '{TASK}.data.text_fields' is empty; name at least one field")
    return p


def load(path: str | Path = "params.yaml") -> tuple[NewsParams, CommonParams]:
    return validate(load_params(TASK, NewsParams, path)), load_common(path)
