"""Readers and writers of the mini-ImageNet layout and of the prepared arrays (shared by dynconv and twolayer).

The course layout: `images/<wnid>/<file>` plus `train.txt`, `val.txt` (or `validation.txt`) and `test.txt`,
each line `<path relative to the txt's folder> <int label>`. Prepared: `<split>.npz` with `images` uint8
(N, S, S, 3) and `labels` int64 (N,) in list-file order, and `classes.json`.

Nothing heavy at module level: numpy and PIL only; torch is imported inside `to_tensor`.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stages.common.io import DataError, read_text, resolve_inside
from stages.mini_imagenet.config import CLASSES_FILE, IMAGES_DIR, LIST_NAMES, MEAN, STD

if TYPE_CHECKING:
    import torch

ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed member timestamps: the same arrays give the same .npz bytes
LABEL = re.compile(r"-?[0-9]+")  # a label: ASCII digits, maybe a minus; no "_", "+" or other scripts


# ----------------------------------------------------------------------------- list files


def read_list_lines(list_file: Path, n_classes: int, shown: str | None = None) -> list[tuple[int, Path, int]]:
    """(line number, absolute image path, label) for every non-blank line; DataError naming file:line.

    A path must stay inside the list file's folder (io.resolve_inside); a label is decimal digits, read
    verbatim (Python's int() would read '1_0' as 10); one image listed twice must carry one label.
    `shown`: the name errors give the file (the user's archive member rather than a temporary path)."""
    list_file = Path(list_file)
    shown = shown or str(list_file)
    if not list_file.is_file():
        raise DataError(f"{shown}: list file not found")
    text = read_text(list_file, name=shown)
    folder = list_file.parent.resolve()  # the folder, not the file: a symlinked list moves no boundary
    out = []
    first: dict[Path, tuple[int, int]] = {}  # image -> (line, label) where it was first listed
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{shown}:{lineno}: expected '<image path> <int label>', got {line.strip()!r}")
        rel, label_text = parts
        if not LABEL.fullmatch(label_text):
            raise DataError(f"{shown}:{lineno}: label {label_text!r} is not an integer")
        label = int(label_text)
        if not 0 <= label < n_classes:
            raise DataError(f"{shown}:{lineno}: label {label} is outside 0..{n_classes - 1} ({n_classes} classes)")
        try:
            path = resolve_inside(folder, rel)
        except DataError:
            raise DataError(f"{shown}:{lineno}: image path {rel!r} leaves the dataset folder") from None
        if not path.is_file():
            raise DataError(f"{shown}:{lineno}: image {rel} not found")
        seen_line, seen_label = first.setdefault(path, (lineno, label))
        if seen_label != label:
            raise DataError(f"{shown}:{lineno}: {rel} has label {label}, but line {seen_line} gives it {seen_label}")
        out.append((lineno, path, label))
    if not out:
        raise DataError(f"{shown}: no images listed")
    return out


def read_list(list_file: Path, n_classes: int) -> list[tuple[Path, int]]:
    """[(absolute image path, label)] in file order; a missing file, bad line or label out of range names file:line."""
    return [(path, label) for _, path, label in read_list_lines(list_file, n_classes)]


def find_list(folder: Path, split: str) -> Path | None:
    """The split's list file in `folder` (`val` accepts val.txt or validation.txt), or None."""
    for name in LIST_NAMES[split]:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def count_classes(folder: Path, override: int = 0, shown: str | None = None) -> int:
    """The class count of a dataset folder: `override` if set, else classes.txt's lines, else images/ folders.

    `shown`: how errors name classes.txt (the user's archive member rather than a temporary path)."""
    if override:
        return override
    classes_file = Path(folder) / CLASSES_FILE
    if classes_file.is_file():
        return len(read_class_names(classes_file, shown))
    images = Path(folder) / IMAGES_DIR
    dirs = [d for d in images.iterdir() if d.is_dir()] if images.is_dir() else []
    if not dirs:
        raise DataError(f"{folder}: no {IMAGES_DIR}/<class> folders and no {CLASSES_FILE}; cannot tell the class count")
    return len(dirs)


def read_class_names(classes_file: Path, shown: str | None = None) -> list[str]:
    """classes.txt: `label name` per line, labels 0..N-1 in order, UTF-8."""
    shown = shown or str(classes_file)
    names = []
    for lineno, line in enumerate(read_text(classes_file, name=shown).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] != str(len(names)):
            raise DataError(f"{shown}:{lineno}: expected '{len(names)} <name>', got {line.strip()!r}")
        names.append(parts[1].strip())
    return names


def class_names(folder: Path, items: Sequence[tuple[Path, int]], n_classes: int) -> list[str]:
    """Names in label order: classes.txt if present, else the image folder (wnid) of each label's first image."""
    classes_file = Path(folder) / CLASSES_FILE
    if classes_file.is_file():
        return read_class_names(classes_file)
    names: list[str | None] = [None] * n_classes
    for path, label in items:
        if names[label] is None:
            names[label] = path.parent.name
    return [n if n is not None else f"class_{i}" for i, n in enumerate(names)]


# ----------------------------------------------------------------------------- images


def decode(path: Path, image_size: int | None = None, name: str | None = None) -> np.ndarray:
    """One image as uint8 (H, W, 3) RGB (common.images.open_rgb: every mode converted properly), resized to
    image_size × image_size (bicubic) when given; DataError naming `name` (default: `path`) if it does not decode."""
    from PIL import Image

    from stages.common.images import open_rgb

    im = open_rgb(path, name or str(path))
    if image_size is not None and im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def check_decodes(shown: str, lines: Sequence[tuple[int, Path, int]]) -> None:
    """Every listed image decodes; otherwise DataError naming the list file (as `shown`), line and image."""
    from tqdm import tqdm

    for lineno, path, _ in tqdm(lines, desc=f"check {Path(shown).name}", unit="img", disable=len(lines) < 500):
        decode(path, name=f"{shown}:{lineno}: image {path.name}")


def load_images(items: Sequence[tuple[Path, int]], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize exactly as mini-imagenet-prepare does: uint8 (N, S, S, 3), int64 (N,)."""
    from tqdm import tqdm

    images = np.zeros((len(items), image_size, image_size, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(tqdm(items, desc="decode", unit="img", disable=len(items) < 500)):
        images[i] = decode(path, image_size)
    return images, np.asarray([label for _, label in items], dtype=np.int64)


def to_tensor(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float32 (N, 3, S, S), scaled to [0, 1] and normalised with MEAN/STD."""
    import torch

    x = torch.as_tensor(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------- prepared arrays


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """An uncompressed .npz that np.load reads, with fixed member timestamps (byte-identical for equal arrays)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", ZIP_DATE), buf.getvalue())


def load_split(prepared: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Prepared `split` (train | val | test): images uint8 (N, S, S, 3), labels int64 (N,)."""
    path = Path(prepared) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: file not found (run mini-imagenet-prepare)")
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a prepared split with 'images' and 'labels' ({err})") from None
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8 or images.shape[1] != images.shape[2]:
        raise DataError(f"{path}: images are {images.shape} {images.dtype}; expected N×S×S×3 uint8")
    if labels.shape != (len(images),) or labels.dtype != np.int64:
        raise DataError(f"{path}: labels are {labels.shape} {labels.dtype}; expected ({len(images)},) int64")
    return images, labels


def load_classes(prepared: Path) -> list[str]:
    """Class names in label order, from prepared/classes.json."""
    path = Path(prepared) / "classes.json"
    if not path.is_file():
        raise DataError(f"{path}: file not found (run mini-imagenet-prepare)")
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))["classes"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{path}: expected {{'image_size': S, 'classes': [...]}} ({err})") from None
    return list(classes)


def load_image_size(prepared: Path) -> int:
    path = Path(prepared) / "classes.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["image_size"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: no image_size ({err})") from None
