"""coco-caption-prepare: the course's run.py sampling — `train_captions` and `val_captions` captions drawn
with replacement (seed 42) — with their image features, into data/coco-caption/prepared/data.npz.

The val references for BLEU are every val caption of each sampled image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stages.coco_caption import config, data
from stages.common.cli import main
from stages.common.io import atomic_path


def run(p: config.CocoCaptionParams, common: config.CommonParams, paths: config.Paths) -> Path:
    raw = data.load_layout(paths.raw)
    rng = np.random.RandomState(p.prepare.seed)  # the course's np.random.choice
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", p.prepare.train_captions), ("val", p.prepare.val_captions)):
        pick = rng.choice(len(raw[f"{split}_captions"]), n)
        image = raw[f"{split}_image_idxs"][pick]
        arrays[f"{split}_captions"] = raw[f"{split}_captions"][pick].astype(np.int64)
        arrays[f"{split}_features"] = raw[f"{split}_features"][image]
        arrays[f"{split}_image_idxs"] = image
    refs: dict[str, list[str]] = {}
    for cap, img in zip(raw["val_captions"], raw["val_image_idxs"], strict=True):
        refs.setdefault(str(int(img)), []).append(data.decode(cap, raw["idx_to_word"]))
    meta = {
        "idx_to_word": raw["idx_to_word"],
        "train_urls": raw["train_urls"],
        "val_urls": raw["val_urls"],
        "val_references": refs,
    }
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        np.savez(out / "data.npz", **arrays)
        (out / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    print(f"coco-caption-prepare: {p.prepare.train_captions} train / {p.prepare.val_captions} val captions -> {out}")
    return paths.prepared


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
