"""Reading folders of images: decodability checks, centre-crop + resize, JPEG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from stages.common.io import DataError
from stages.ddpm import config

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_files(folder: Path) -> list[Path]:
    """Every file under `folder` except hidden ones (.DS_Store and the like), sorted by path."""
    return sorted(
        f
        for f in folder.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def decode(path: Path) -> np.ndarray:
    """H×W×3 uint8 of an image file; DataError naming the file if it is not a decodable image."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a decodable image ({err.__class__.__name__}: {err})") from None


def square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to size×size (bicubic; box filter when shrinking by an integer)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(image[top : top + side, left : left + side])
    resample = Image.Resampling.BOX if side % size == 0 and side >= size else Image.Resampling.BICUBIC
    return np.asarray(img.resize((size, size), resample), dtype=np.uint8)


def save_jpeg(image: np.ndarray, path: Path, quality: int = 95) -> None:
    Image.fromarray(image).save(path, format="JPEG", quality=quality)


def load_prepared(folder: Path) -> np.ndarray:
    """The prepared images as N×3×S×S float32 in [-1, 1]."""
    file = folder / "images.npy"
    if not file.is_file():
        raise DataError(f"{file}: not found; run ddpm-prepare")
    images = np.load(file)
    return (images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5) - 1.0


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


def upscale(images: np.ndarray, size: int = config.SUBMISSION_SIZE) -> np.ndarray:
    """N×s×s×3 uint8 -> N×size×size×3 (bicubic); unchanged when already that size."""
    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in images])
