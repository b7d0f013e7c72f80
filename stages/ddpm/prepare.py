"""ddpm-prepare: decode data/ddpm/raw once into one compact array (uint8 N×S×S×3, S = prepare.image_size).

One `images.npy` instead of thousands of loose files as a DVC output. `load()`
returns it normalised to [-1, 1] as N×3×S×S float32, which is what training reads;
horizontal flips are a train-time option (`ddpm.train.hflip`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, atomic_path, write_json
from stages.ddpm import config
from stages.ddpm.images import decode, list_files, square


def read_folder(folder: Path, size: int, resize: bool = True, limit: int = 0) -> np.ndarray:
    """The images of `folder` in name order as N×size×size×3 uint8."""
    files = list_files(folder)[: limit or None]
    if not files:
        raise DataError(f"{folder}: no images")
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, file in enumerate(files):
        image = decode(file)
        if not resize and image.shape[:2] != (size, size):
            raise DataError(
                f"{file}: {image.shape[1]}×{image.shape[0]}, expected {size}×{size} (or set ddpm.prepare.resize: true)"
            )
        out[i] = square(image, size)
    return out


def run(p: config.DdpmParams, paths: config.Paths) -> Path:
    images = read_folder(paths.raw, p.prepare.image_size, p.prepare.resize, p.prepare.max_images)
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        np.save(out / "images.npy", images)
        write_json(out / "info.json", {"images": len(images), "size": p.prepare.image_size})
    print(f"ddpm-prepare: {len(images)} images at {p.prepare.image_size}×{p.prepare.image_size} -> {paths.prepared}")
    return paths.prepared


def load(paths: config.Paths) -> np.ndarray:
    """The prepared images as N×3×S×S float32 in [-1, 1]."""
    file = paths.prepared / "images.npy"
    if not file.is_file():
        raise DataError(f"{file}: not found; run ddpm-prepare")
    images = np.load(file)
    return (images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5) - 1.0


if __name__ == "__main__":
    main(lambda: run(config.load()[0], config.Paths()))
