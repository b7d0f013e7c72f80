"""vit-prepare: validated train/test arrays plus the per-channel mean/std of the train images
(data/vit/prepared/{train,test}.npz, meta.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import atomic_path
from stages.vit import config, data


def run(p: config.VitParams, common: config.CommonParams, paths: config.Paths) -> Path:
    classes = data.read_classes(paths.raw)
    x, _ = data.read_split(paths.raw, "train", len(classes))
    data.read_split(paths.raw, "test", len(classes))
    pixels = x.reshape(-1, 3).astype(np.float64) / 255.0
    meta = {"classes": classes, "mean": pixels.mean(0).round(6).tolist(), "std": pixels.std(0).round(6).tolist()}
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        for split in ("train", "test"):
            shutil.copyfile(paths.raw / f"{split}.npz", out / f"{split}.npz")
        (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    print(f"vit-prepare: mean {meta['mean']} std {meta['std']} -> {paths.prepared}")
    return paths.prepared


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
