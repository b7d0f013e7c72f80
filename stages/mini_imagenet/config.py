"""Parameters (the `mini-imagenet:` section of params.yaml) and file locations of the shared mini-ImageNet data.

A pseudo-task: its two stages (`mini-imagenet-download`, `mini-imagenet-prepare`) produce the data that
`dynconv` and `twolayer` both consume, so one archive is fetched, validated and resized once.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from stages.common.params import CommonParams, ParamsError, load_common, load_params
from stages.common.paths import TaskPaths

TASK = "mini-imagenet"

SPLITS = ("train", "val", "test")
# The course's sheet says validation.txt, public copies and ../shared/data/mini_imagenet say val.txt.
LIST_NAMES = {"train": ("train.txt",), "val": ("val.txt", "validation.txt"), "test": ("test.txt",)}
IMAGES_DIR = "images"
CLASSES_FILE = "classes.txt"  # optional `label name` lines (../shared/data/mini_imagenet has one)

# The course's own archive (seed 004 §I). Its sha256 is not published: set mini-imagenet.data.sha256.
COURSE_URL = "https://cchsu.info/files/images.zip"

# Normalisation of every model input (ImageNet's statistics; the same for every subset of channels).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class DataParams:
    # sample | dir:<folder in the course layout> | <path>.zip | url:<url of images.zip> (+ sha256)
    source: str = "sample"
    sha256: str = ""  # required for url:
    num_classes: int = 0  # 0 = the lines of classes.txt if present, else the folders under images/
    sample_train: int = 60  # generated images per class and split
    sample_val: int = 20
    sample_test: int = 20
    sample_size: int = 40  # generated image side, pixels
    sample_seed: int = 0


@dataclasses.dataclass
class PrepareParams:
    image_size: int = 32  # every image is resized to image_size × image_size (the course's 84×84 → 64 in the preset)


@dataclasses.dataclass
class MiniImagenetParams:
    data: DataParams = dataclasses.field(default_factory=DataParams)
    prepare: PrepareParams = dataclasses.field(default_factory=PrepareParams)

    def check_data(self) -> MiniImagenetParams:
        """Ranges of `mini-imagenet.data` (the download stage's params)."""
        d = self.data
        for key in ("sample_train", "sample_val", "sample_test"):
            if not 1 <= getattr(d, key) <= 10_000:
                raise ParamsError(f"parameter 'mini-imagenet.data.{key}' is {getattr(d, key)}; expected 1..10000")
        if not 16 <= d.sample_size <= 512:
            raise ParamsError(f"parameter 'mini-imagenet.data.sample_size' is {d.sample_size}; expected 16..512")
        if not 0 <= d.num_classes <= 100_000:
            raise ParamsError(f"parameter 'mini-imagenet.data.num_classes' is {d.num_classes}; expected 0..100000")
        if d.sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", d.sha256):
            raise ParamsError("parameter 'mini-imagenet.data.sha256' must be 64 hex digits")
        d.sha256 = d.sha256.lower()
        return self

    def check_prepare(self) -> MiniImagenetParams:
        """Ranges of `mini-imagenet.prepare` and `data.num_classes` (the prepare stage's params)."""
        if not 0 <= self.data.num_classes <= 100_000:
            raise ParamsError(
                f"parameter 'mini-imagenet.data.num_classes' is {self.data.num_classes}; expected 0..100000"
            )
        if not 8 <= self.prepare.image_size <= 1024:
            raise ParamsError(
                f"parameter 'mini-imagenet.prepare.image_size' is {self.prepare.image_size}; expected 8..1024"
            )
        return self


class Paths(TaskPaths):
    """data/mini-imagenet/raw (the course layout, validated) and data/mini-imagenet/prepared (uint8 arrays)."""

    task = TASK


def load(path: str | Path = "params.yaml") -> tuple[MiniImagenetParams, CommonParams]:
    """Types checked here; each stage checks the ranges of the keys it reads before doing anything."""
    return load_params(TASK, MiniImagenetParams, path), load_common(path)
