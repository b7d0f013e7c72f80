"""Parameters (the `vlm-caption:` section of params.yaml) and file locations of the vlm-caption task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import (
    CommonParams,
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

TASK = "vlm-caption"
TINY = "tiny"  # model.name that builds the randomly initialised stand-in (stages/vlm_caption/tiny_model.py)


@dataclasses.dataclass
class DataParams:
    # sample | dir:<folder with the course's 4 files> | dir:<Flickr8k-style folder> | hf:<dataset>
    source: str = "sample"
    sample_train: int = 1500  # generated scenes per split (sample source)
    sample_valid: int = 64
    sample_test: int = 64
    sample_seed: int = 0


@dataclasses.dataclass
class PrepareParams:
    # the user turn of every example; the course gives no wording, this is ours
    instruction: str = "Describe this image in one sentence."
    max_train_rows: int = 0  # 0 = all; else the first N train rows (a quick run on a big set)


@dataclasses.dataclass
class ModelParams:
    # tiny (built from code) | a Hub id (meta-llama/Llama-3.2-11B-Vision-Instruct, unsloth/...) | a local folder
    name: str = TINY
    backend: Literal["auto", "unsloth", "transformers"] = "auto"  # auto: unsloth when CUDA and unsloth import
    load_in_4bit: bool = True  # unsloth path only (bitsandbytes)
    # unsloth: "unsloth" checkpointing; transformers: SFTConfig.gradient_checkpointing (recomputes the forward)
    gradient_checkpointing: bool = False  # sample scale: off (tiny model); full preset: on
    # the tiny model's sizes (model.name: tiny)
    tiny_vocab: int = 384
    tiny_image_size: int = 32
    tiny_text_hidden: int = 64
    tiny_text_layers: int = 4
    tiny_vision_hidden: int = 32
    tiny_vision_layers: int = 2


@dataclasses.dataclass
class LoraParams:
    r: int = 16
    alpha: int = 16
    dropout: float = 0.0
    finetune_vision_layers: bool = False  # unsloth's switches; the course's captions need language layers only
    finetune_language_layers: bool = True
    finetune_attention_modules: bool = True
    finetune_mlp_modules: bool = True
    # fully trained extra modules; the tiny model's random lm_head gives near-flat logits otherwise (full preset: [])
    modules_to_save: list[str] = dataclasses.field(default_factory=lambda: ["lm_head"])


@dataclasses.dataclass
class TrainParams:
    max_steps: int = 600
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-3
    warmup_steps: int = 5
    weight_decay: float = 0.01
    scheduler: str = "linear"
    optim: str = "adamw_torch_fused"  # fused: no MKL in the step, the same bytes on every CPU; the unsloth notebooks use adamw_8bit (bitsandbytes, GPU)
    logging_steps: int = 20
    checkpoint_every: int = 200  # steps between resumable checkpoints (adapter, optimizer, RNG); 0 = none
    cache_images: bool = True  # process each distinct image once and reuse its tensors (small images; full: false)


@dataclasses.dataclass
class PredictParams:
    batch_size: int = 32
    max_new_tokens: int = 24
    num_beams: int = 1  # 1 = greedy
    no_repeat_ngram_size: int = 0  # 0 = off; n > 0 forbids repeating any n-gram (stops "a black and a black and")
    repetition_penalty: float = 1.0  # 1.0 = off; > 1 discourages tokens already generated
    examples: int = 6  # validation images shown in the report


@dataclasses.dataclass
class VlmCaptionParams:
    seed: int = 3407  # unsloth's notebooks
    threads: int = 1  # torch CPU threads; 0 = common.threads (the tiny model's ops are too small to split)
    data: DataParams = dataclasses.field(default_factory=DataParams)
    prepare: PrepareParams = dataclasses.field(default_factory=PrepareParams)
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    lora: LoraParams = dataclasses.field(default_factory=LoraParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    predict: PredictParams = dataclasses.field(default_factory=PredictParams)


class Paths(TaskPaths):
    """Every file the vlm_caption stages read or write, beyond the shared ones in TaskPaths."""

    task = TASK

    @property
    def model(self) -> Path:
        return self._p("models", TASK)

    @property
    def predictions(self) -> Path:
        return self._p("data", TASK, "predictions.json")

    @property
    def train_metrics(self) -> Path:
        return self._p("metrics", f"{TASK}_train.json")

    @property
    def metrics(self) -> Path:
        return self._p("metrics", f"{TASK}.json")

    @property
    def submission(self) -> Path:
        return self._p("submissions", TASK, "submission.json")


def load(path: str | Path = "params.yaml") -> tuple[VlmCaptionParams, CommonParams]:
    p = load_params(TASK, VlmCaptionParams, path)
    validate(p)
    return p, load_common(path)


# Upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs.
RANGES = {
    "threads": between(0, 1024),
    "data.sample_train": between(1, 1_000_000), "data.sample_valid": between(1, 1_000_000),
    "data.sample_test": between(1, 1_000_000),
    "prepare.max_train_rows": between(0, 100_000_000),
    # the tiny model: 4 attention heads, 8-pixel patches, cross-attention at text layers 1 and 3
    "model.tiny_vocab": between(1, 1_000_000), "model.tiny_image_size": between(8, 2048),
    "model.tiny_text_hidden": between(4, 8192), "model.tiny_text_layers": between(4, 128),
    "model.tiny_vision_hidden": between(4, 8192), "model.tiny_vision_layers": between(1, 128),
    "lora.r": between(1, 65_536), "lora.alpha": between(1, 1_000_000), "lora.dropout": between(0, 1, open_high=True),
    "train.max_steps": between(1, 100_000_000), "train.batch_size": between(1, 65_536),
    "train.grad_accum": between(1, 65_536), "train.lr": above(0), "train.warmup_steps": between(0, 100_000_000),
    "train.weight_decay": at_least(0), "train.logging_steps": between(1, 100_000_000),
    "train.checkpoint_every": between(0, 100_000_000),
    "predict.batch_size": between(1, 65_536), "predict.max_new_tokens": between(1, 65_536),
    "predict.num_beams": between(1, 1000), "predict.no_repeat_ngram_size": between(0, 65_536),
    "predict.repetition_penalty": above(0), "predict.examples": between(0, 10_000),
}  # fmt: skip


@validator
def validate(p: VlmCaptionParams) -> VlmCaptionParams:
    """Every range and cross-parameter rule, before any stage builds anything."""
    check_ranges(p, TASK, RANGES)
    m = p.model
    if m.name == TINY:
        for key in ("tiny_text_hidden", "tiny_vision_hidden"):
            require(getattr(m, key) % 4 == 0, f"parameter '{TASK}.model.{key}' ({getattr(m, key)}) must be a "
                    "multiple of 4 (the tiny model's attention heads)")  # fmt: skip
        require(m.tiny_image_size % 8 == 0, f"parameter '{TASK}.model.tiny_image_size' ({m.tiny_image_size}) "
                "must be a multiple of 8 (the tiny model's patch size)")  # fmt: skip
    return p
