"""Reading the mygo data: the image lists the download validated, the prepared arrays, prediction files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from stages.common.io import DataError, read_json
from stages.common.sources import iter_source_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def natural_key(name: str) -> tuple:
    """Sort '2' before '10' when names are numbers; otherwise plain string order."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def check_image(path: Path) -> None:
    """Decode the whole image (common.images.open_rgb); truncated, corrupt or decompression-bomb files raise
    DataError naming the file."""
    from stages.common.images import open_rgb

    open_rgb(path, str(path))


def list_images(folder: Path, root: Path | None = None) -> list[Path]:
    """The images directly in `folder`, in natural name order. Symlinks follow common.sources' rule with `root`
    (default: `folder`) as the boundary: a link (or `folder` itself) leading out of it is a DataError naming it."""
    return sorted(iter_source_files(root or folder, IMAGE_SUFFIXES, folder=folder), key=lambda f: natural_key(f.name))


def load_prepared(folder: Path) -> dict:
    """The prepared arrays and index; missing files are a DataError naming them."""
    index = read_json(folder / "index.json")
    data = {"index": index, "classes": index["classes"]}
    for name in ("train_images", "train_labels", "valid_images", "valid_labels", "test_images"):
        file = folder / f"{name}.npy"
        if not file.is_file():
            raise DataError(f"{file}: not found; run mygo-prepare")
        data[name] = np.load(file, allow_pickle=False)
    return data


def read_predictions(path, n: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: not found; re-run mygo-predict")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != n:
        raise DataError(f"{path}: {len(rows)} rows, expected {n}")
    return np.asarray([int(r["label"]) for r in rows], dtype=np.int64)
