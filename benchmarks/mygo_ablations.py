"""Ablations for the mygo README: one model per variant on the prepared data, single-view and TTA accuracy.

    python -m benchmarks.mygo_ablations [variant ...]     (from the repo root, after `dvc repro mygo-prepare`)

Each variant changes the default `mygo.models.cnn` / `mygo.train` settings of params.yaml;
models are trained in a scratch folder (.cache/ablations), MLflow off. Prints a Markdown table.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stages.mygo import augment, config, ensemble, train
from stages.mygo.model import load
from stages.mygo.predict import logits_for_views

DEFAULT_AUG = ["hflip", "crop", "color_jitter"]
VARIANTS: dict[str, tuple[dict, dict]] = {  # name: (model overrides, train overrides)
    "default (cnn 4 blocks; hflip, crop, color_jitter)": ({}, {}),
    "augment: none": ({}, {"augment": []}),
    "augment: hflip only": ({}, {"augment": ["hflip"]}),
    "augment: hflip, crop": ({}, {"augment": ["hflip", "crop"]}),
    "augment: hflip, resized_crop, color_jitter": ({}, {"augment": ["hflip", "resized_crop", "color_jitter"]}),
    "augment: + trivial_augment": ({}, {"augment": [*DEFAULT_AUG, "trivial_augment"]}),
    "augment: + erasing": ({}, {"augment": [*DEFAULT_AUG, "erasing"]}),
    "augment: + mixup 0.2 / cutmix 1.0": ({}, {"mixup_alpha": 0.2, "cutmix_alpha": 1.0}),
    "no label smoothing": ({}, {"label_smoothing": 0.0}),
    "sgd lr 0.05": ({}, {"optimizer": "sgd", "lr": 0.05}),
    "arch: cnn 3 blocks (course template shape)": ({"depth": 3}, {}),
    "arch: cnn 4 blocks × 2 convs, width 24": ({"width": 24, "convs_per_block": 2}, {}),
    "arch: resnet18 (from scratch)": ({"arch": "resnet18", "small_input": False}, {}),
}


def main(selected: list[str]) -> None:
    p, common = config.load()
    common.mlflow = False
    paths = config.Paths(Path(".cache/ablations"))
    if paths.prepared.exists():
        shutil.rmtree(paths.prepared)
    shutil.copytree(config.Paths().prepared, paths.prepared)
    data_valid = np.load(paths.prepared / "valid_images.npy")
    labels = np.load(paths.prepared / "valid_labels.npy")
    views = augment.check_views(p.predict.tta)
    base_model, base_train = p.models["cnn"], dataclasses.asdict(p.train)
    print(f"| variant | params | single | TTA ({'+'.join(views)}) | train s |\n|---|---|---|---|---|")
    for i, (name, (model_over, train_over)) in enumerate(VARIANTS.items()):
        if selected and not any(s in name for s in selected):
            continue
        key = f"v{i}"
        p.models[key] = {**base_model, **model_over}
        p.train = config.TrainParams(**{**base_train, **train_over})
        start = time.time()
        summary = train.run(key, p, common, paths)
        model, saved = load(paths.model(key))
        logits = logits_for_views(
            model, data_valid, views, torch.tensor(saved["mean"]), torch.tensor(saved["std"]), "cpu", 256
        )
        single = ensemble.accuracy(logits[0].argmax(-1), labels)
        tta = ensemble.accuracy(ensemble.tta(logits).argmax(-1), labels)
        print(
            f"| {name} | {summary['parameters']:,} | {single:.3f} | {tta:.3f} | {time.time() - start:.0f} |", flush=True
        )


if __name__ == "__main__":
    main(sys.argv[1:])
