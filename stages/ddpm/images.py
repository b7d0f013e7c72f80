"""Reading folders of images: decodability checks, centre-crop + resize, JPEG writing, the raw archive."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from stages.common.images import open_rgb
from stages.common.io import DataError
from stages.common.sources import iter_source_files
from stages.ddpm import config

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CELEBA_ALIGNED = (218, 178)  # height, width of CelebA's aligned-and-cropped images (img_align_celeba)


def list_files(folder: Path) -> list[Path]:
    """Every file under `folder` except hidden ones (.DS_Store and the like), sorted by path. Symlinks follow
    common.sources' rule: one resolving inside `folder` (a file or a sub-folder) is followed, one resolving
    outside it is a DataError naming the link."""
    return [
        f
        for f in iter_source_files(folder, recursive=True)
        if not any(part.startswith(".") for part in f.relative_to(folder).parts)
    ]


def decode(path: Path | str, data: bytes | None = None) -> np.ndarray:
    """H×W×3 uint8 of an image file (or of `data`, its bytes), every mode converted properly (16-bit, palette,
    alpha, CMYK: common.images.open_rgb); DataError naming `path` if it does not decode or is a decompression bomb."""
    return np.asarray(open_rgb(data if data is not None else path, str(path)), dtype=np.uint8)


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


def jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_archive(path: Path, files: Iterable[tuple[str, bytes]]) -> int:
    """An uncompressed zip of (name, bytes), byte-identical for the same files (fixed times and modes)."""
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            count += 1
    return count


def archive_names(path: Path) -> list[str]:
    """The file names inside the raw archive, sorted; DataError naming it if it is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sorted(n for n in archive.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: not a readable zip ({err}); re-run ddpm-download") from None


def _raw_images(folder: Path, limit: int) -> Iterator[tuple[str, bytes | None]]:
    """(name for errors, bytes or None to read the file) of each image in name order, the archive's if present."""
    archive = folder / config.RAW_ARCHIVE
    if archive.is_file():
        names = archive_names(archive)[: limit or None]
        with zipfile.ZipFile(archive) as z:
            for name in names:
                yield f"{archive}:{name}", z.read(name)
    else:
        for file in list_files(folder)[: limit or None]:
            yield str(file), None


def load_prepared(folder: Path) -> np.ndarray:
    """The prepared images as N×3×S×S float32 in [-1, 1]."""
    file = folder / "images.npy"
    if not file.is_file():
        raise DataError(f"{file}: not found; run ddpm-prepare")
    images = np.load(file)
    return (images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5) - 1.0


def celeba_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre side×side of an aligned CelebA image (178×218, CELEBA_ALIGNED); any other image, or side 0,
    unchanged. Top and left offsets as score_sde's central_crop: (218 - side) // 2, (178 - side) // 2."""
    if not side or image.shape[:2] != CELEBA_ALIGNED:
        return image
    top, left = (CELEBA_ALIGNED[0] - side) // 2, (CELEBA_ALIGNED[1] - side) // 2
    return image[top : top + side, left : left + side]


def read_folder(folder: Path, size: int, resize: bool = True, limit: int = 0, crop: int = 0) -> np.ndarray:
    """The images of `folder` (ddpm-download's, holding RAW_ARCHIVE, or any image folder) as N×size×size×3 uint8:
    aligned CelebA images cut to their centre crop×crop first (celeba_crop), then centre-squared and resized."""
    images = []
    for name, data in _raw_images(folder, limit):
        image = decode(name, data)
        if not resize and image.shape[:2] != (size, size):
            raise DataError(
                f"{name}: {image.shape[1]}×{image.shape[0]}, expected {size}×{size} (or set ddpm.prepare.resize: true)"
            )
        images.append(square(celeba_crop(image, crop), size))
    if not images:
        raise DataError(f"{folder}: no images")
    return np.stack(images)


def upscale(images: np.ndarray, size: int = config.SUBMISSION_SIZE) -> np.ndarray:
    """N×s×s×3 uint8 -> N×size×size×3 (bicubic); unchanged when already that size."""
    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in images])
