"""The course's file formats: `pixel_color.txt` (400 palette indices per line) and `colormap.txt` (`R G B` per line)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.common.io import DataError, atomic_path, read_text

SIDE = 20
SEQ_LEN = SIDE * SIDE  # 400 tokens per image
PREFIX_LEN = 240  # the test split gives the first 60%
N_COLORS = 167
SPLITS = {"train": (0, 632), "dev": (632, 712), "test": (712, 792)}  # by line order, as the course splits
N_IMAGES = 792


def read_colormap(path: str | Path, n_colors: int = N_COLORS) -> np.ndarray:
    """Palette as uint8 (n_colors, 3); every row must be three ints in 0..255."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    for lineno, line in enumerate(read_text(path, "utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{path}:{lineno}: palette row must be 3 integers 'R G B', got {len(parts)} values")
        try:
            rgb = [int(p) for p in parts]
        except ValueError:
            raise DataError(f"{path}:{lineno}: palette row has a non-integer value: {line.strip()!r}") from None
        if any(not 0 <= v <= 255 for v in rgb):
            raise DataError(f"{path}:{lineno}: palette values must be in 0..255, got {line.strip()!r}")
        rows.append(rgb)
    if len(rows) != n_colors:
        raise DataError(f"{path}: expected {n_colors} palette rows, found {len(rows)}")
    return np.asarray(rows, dtype=np.uint8)


def read_pixels(
    path: str | Path, n_colors: int = N_COLORS, n_images: int | None = N_IMAGES, seq_len: int = SEQ_LEN
) -> np.ndarray:
    """Images as int64 (n, seq_len); every line must hold exactly seq_len indices in [0, n_colors)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    images = []
    for lineno, line in enumerate(read_text(path, "utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != seq_len:
            raise DataError(f"{path}:{lineno}: expected {seq_len} palette indices, found {len(parts)}")
        try:
            row = [int(p) for p in parts]
        except ValueError:
            raise DataError(f"{path}:{lineno}: non-integer palette index in line") from None
        bad = next((v for v in row if not 0 <= v < n_colors), None)
        if bad is not None:
            raise DataError(f"{path}:{lineno}: palette index {bad} out of range [0, {n_colors - 1}]")
        images.append(row)
    if n_images is not None and len(images) != n_images:
        raise DataError(f"{path}: expected {n_images} images (lines), found {len(images)}")
    return np.asarray(images, dtype=np.int64).reshape(-1, seq_len)


def write_pixels(path: str | Path, images: np.ndarray | Sequence[Sequence[int]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(" ".join(str(int(v)) for v in row) for row in images) + "\n", encoding="utf-8")


def write_colormap(path: str | Path, palette: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(f"{r} {g} {b}" for r, g, b in palette.tolist()) + "\n", encoding="utf-8")


def render(images: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(n, ≤400) indices -> (n, 20, 20, 3) uint8, padding short sequences with index 0 as the course does."""
    images = np.asarray(images, dtype=np.int64)
    if images.ndim == 1:
        images = images[None]
    padded = np.zeros((len(images), SEQ_LEN), dtype=np.int64)
    padded[:, : images.shape[1]] = images[:, :SEQ_LEN]
    return palette[padded].reshape(-1, SIDE, SIDE, 3)


def mirror(images: np.ndarray) -> np.ndarray:
    """(n, 400) sprites -> their left-right mirror images (each row of 20 pixels reversed)."""
    return images.reshape(-1, SIDE, SIDE)[:, :, ::-1].reshape(-1, SEQ_LEN)


def split(images: np.ndarray) -> dict[str, np.ndarray]:
    return {name: images[start:stop] for name, (start, stop) in SPLITS.items()}


def load_prepared(folder: Path) -> dict[str, np.ndarray]:
    """The prepared splits: train/dev (n, 400), test_prefix (80, 240), palette (167, 3)."""
    palette = read_colormap(folder / "colormap.txt")
    n = len(palette)
    return {
        "train": read_pixels(folder / "train.txt", n, None),
        "dev": read_pixels(folder / "dev.txt", n, None),
        "test_prefix": read_pixels(folder / "test_prefix.txt", n, None, seq_len=PREFIX_LEN),
        "palette": palette,
    }
