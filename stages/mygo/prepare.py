"""mygo-prepare: decode every raw image, resize to image_size², and store uint8 arrays.

data/mygo/prepared/
  {train,valid,test}_images.npy   uint8 (N, S, S, 3)
  {train,valid}_labels.npy        int64 (N,)
  index.json                      classes, image_size, file names per split (test ids = names without extension)
`.npy` rather than `.npz`: np.savez stamps the time into its zip, which would break byte-identical outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, atomic_path, read_json
from stages.mygo import config
from stages.mygo.data import list_images, natural_key

SPLITS = ("train", "valid", "test")


def run(p: config.MygoParams, common: config.CommonParams, paths: config.Paths) -> Path:
    size = p.prepare.image_size
    if size < 8:
        raise DataError(f"mygo.prepare.image_size is {size}; use at least 8")
    classes = read_json(paths.raw / "classes.json")
    index: dict = {"classes": classes, "image_size": size}
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        for split in SPLITS:
            files, labels = split_files(paths.raw, split, classes)
            np.save(out / f"{split}_images.npy", np.stack([load_image(f, size) for f in files]))
            if split != "test":
                np.save(out / f"{split}_labels.npy", np.asarray(labels, dtype=np.int64))
            index[f"{split}_files"] = [f.relative_to(paths.raw / split).as_posix() for f in files]
        index["test_ids"] = [Path(f).stem for f in index["test_files"]]
        (out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    counts = ", ".join(f"{s} {len(index[s + '_files'])}" for s in SPLITS)
    print(f"mygo-prepare: {counts} at {size}×{size} -> {paths.prepared}")
    return paths.prepared


def split_files(raw: Path, split: str, classes: list[str]) -> tuple[list[Path], list[int]]:
    folder = raw / split
    if not folder.is_dir():
        raise DataError(f"{folder}: not found; run mygo-download")
    if split == "test":
        files = list_images(folder)
        if not files:
            raise DataError(f"{folder}: test folder has no images")
        return files, []
    files, labels = [], []
    for class_dir in sorted((c for c in folder.iterdir() if c.is_dir()), key=lambda c: natural_key(c.name)):
        if class_dir.name not in classes:
            raise DataError(f"{class_dir}: unknown class '{class_dir.name}' (classes.json: {', '.join(classes)})")
        images = list_images(class_dir)
        files += images
        labels += [classes.index(class_dir.name)] * len(images)
    if not files:
        raise DataError(f"{folder}: no images")
    return files, labels


def load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    from stages.common.images import open_rgb

    rgb = open_rgb(path, str(path))
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(rgb, dtype=np.uint8)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
