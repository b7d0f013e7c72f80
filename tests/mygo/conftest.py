"""Tiny mygo settings for tests: a few 16-pixel images per class, one-epoch CNNs, no MLflow."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import tiny_task

from stages.common.params import CommonParams
from stages.mygo import config


def tiny_params(**data) -> config.MygoParams:
    p = tiny_task("mygo", config.MygoParams)
    p.data = dataclasses.replace(p.data, **data)
    p.ensemble = ["a", "b"]
    p.models = {"a": config.ModelParams(arch="cnn", width=4, depth=2, seed=0),
                "b": config.ModelParams(arch="cnn", width=4, depth=2, convs_per_block=2, seed=1)}  # fmt: skip
    p.train = dataclasses.replace(p.train, augment=["hflip", "crop", "color_jitter", "erasing"],
                                  mixup_alpha=0.2, cutmix_alpha=0.2)  # fmt: skip
    return p.check()


@pytest.fixture
def tiny():
    return tiny_params


@pytest.fixture
def common() -> CommonParams:
    return CommonParams(device="cpu", threads=1, mlflow=False)


def write_image(path: Path, color=(200, 40, 40), size=(20, 14), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[...] = color
    arr[: size[1] // 2, : size[0] // 2] = 255 - np.asarray(color, dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.fixture
def image():
    return write_image


@pytest.fixture
def course_dir(tmp_path: Path) -> Path:
    """A course-style folder: train/<class>/, valid/<class>/, test/ with a few images of 3 classes."""
    root = tmp_path / "course"
    colors = {"anon": (240, 146, 188), "rana": (230, 122, 40), "taki": (30, 30, 40)}
    for ci, (name, color) in enumerate(colors.items()):
        for i in range(3):
            write_image(root / "train" / name / f"{name}{i}.jpg", color, size=(20 + i, 14 + ci))
        write_image(root / "valid" / name / f"v{name}.png", color)
    for i in range(4):
        write_image(root / "test" / f"{i:03d}.jpg", list(colors.values())[i % 3])
    return root
