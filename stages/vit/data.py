"""CIFAR-10 readers (class folders, official python pickles, torchvision) and the generated 10-class sample.

Every reader returns uint8 images N×32×32×3, int64 labels and the class names; problems raise DataError.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from stages.common.io import DataError, read_text, require_file
from stages.common.sources import iter_source_files

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SAMPLE_CLASSES = ["hstripes", "vstripes", "diagonal", "checker", "disk", "ring", "square", "cross", "blobs", "gradient"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _pattern(k: int, rng: np.random.Generator, n: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    cy, cx = n / 2 + rng.uniform(-5, 5), n / 2 + rng.uniform(-5, 5)
    period = rng.uniform(5, 9)
    phase = rng.uniform(0, period)
    r = np.hypot(yy - cy, xx - cx)
    size = rng.uniform(6, 11)
    masks = [
        ((yy + phase) % period) < period / 2,
        ((xx + phase) % period) < period / 2,
        ((xx + yy + phase) % period) < period / 2,
        (((yy + phase) // (period / 1.5) + (xx + phase) // (period / 1.5)) % 2) == 0,
        r < size,
        (r < size) & (r > size - 3),
        (abs(yy - cy) < size * 0.8) & (abs(xx - cx) < size * 0.8),
        (abs(yy - cy) < 2.5) | (abs(xx - cx) < 2.5),
        None,
        None,
    ]
    fg, bg = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    if k == 8:  # a few soft blobs
        m = np.zeros((n, n), np.float32)
        for _ in range(4):
            by, bx = rng.uniform(0, n, 2)
            m += np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * rng.uniform(2, 4) ** 2))
        alpha = np.clip(m, 0, 1)[..., None]
    elif k == 9:  # a linear gradient at a random angle
        a = rng.uniform(0, 2 * np.pi)
        g = (np.cos(a) * (xx - n / 2) + np.sin(a) * (yy - n / 2)) / n + 0.5
        alpha = np.clip(g, 0, 1)[..., None]
    else:
        alpha = masks[k].astype(np.float32)[..., None]
    img = alpha * fg + (1 - alpha) * bg + rng.normal(0, 0.06, (n, n, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_sample(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    rng.shuffle(labels)
    return np.stack([_pattern(int(k), rng) for k in labels]), labels.astype(np.int64)


def read_class_folders(split_dir: Path, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from stages.common.images import open_rgb

    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    classes = classes or found
    if found != classes:
        raise DataError(f"{split_dir}: class folders {found} differ from {classes}")
    images, labels = [], []
    for k, name in enumerate(classes):
        files = iter_source_files(split_dir, IMAGE_SUFFIXES, folder=split_dir / name)  # no symlink out of split_dir
        if not files:
            raise DataError(f"{split_dir / name}: no images")
        for f in files:
            arr = np.asarray(open_rgb(f, f))
            if arr.shape != (32, 32, 3):
                raise DataError(f"{f}: image is {arr.shape[1]}×{arr.shape[0]}; expected 32×32")
            images.append(arr)
            labels.append(k)
    return np.stack(images), np.array(labels, dtype=np.int64), classes


# Every global a CIFAR-10 batch names: numpy's array reconstruction (numpy 1 and 2 spell its module apart),
# plus what a batch re-saved by Python 3 adds: `_codecs.encode` (protocols 0-2 spell bytes as text + encoding)
# and numpy's `_frombuffer` (protocol 5 arrays). Each builds data from data; none reaches files, processes or
# imports of the pickle's choosing.
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's official python batches, and nothing else.

    Those batches ARE pickles: the format itself, as CIFAR-10 distributes it, not a choice of ours. A pickle
    may name any importable callable and have it called, which is how a crafted file runs code. Here the
    only callables it may name are CIFAR_GLOBALS (numpy array reconstruction); everything else in a batch
    is plain data (dict, list, bytes, int) that unpickling builds without calling anything. A pickle that
    asks for any other global is refused before that global is imported or called.
    """

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in CIFAR_GLOBALS:
            raise DataError(f"refusing to load: the pickle asks for {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with path.open("rb") as f:
            d = CifarUnpickler(f, encoding="bytes").load()
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - a malformed pickle fails in many ways (EOF, bad opcodes, memo keys...)
        raise DataError(f"{path}: not a CIFAR-10 pickle ({err.__class__.__name__}: {err})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR-10 pickle (holds a {type(d).__name__}, expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_pickles(folder: Path) -> dict:
    """The official `cifar-10-batches-py`: data_batch_1..5, test_batch (data N×3072 uint8, labels), batches.meta."""
    out = {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        xs, ys = [], []
        for name in names:
            d = _unpickle(folder / name)
            if "data" not in d or "labels" not in d:
                raise DataError(f"{folder / name}: missing key 'data' or 'labels'")
            try:
                x, y = np.asarray(d["data"], dtype=np.uint8), np.asarray(d["labels"], dtype=np.int64)
            except (TypeError, ValueError, OverflowError) as err:
                raise DataError(f"{folder / name}: 'data' or 'labels' is not numbers ({err})") from None
            if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (len(x),):
                raise DataError(f"{folder / name}: data is {x.shape}; expected N×3072 with N labels")
            xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(y)
        out[split] = (np.concatenate(xs), np.concatenate(ys))
    meta = folder / "batches.meta"
    classes = CIFAR_CLASSES
    if meta.is_file():
        names = _unpickle(meta).get("label_names")
        if names:
            classes = [n.decode() if isinstance(n, bytes) else n for n in names]
    for split, names in (("train", "data_batch_1..5"), ("test", "test_batch")):
        labels = out[split][1]
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if len(bad):
            raise DataError(f"{folder}/{names}: label {labels[bad[0]]} is not a class number (0..{len(classes) - 1})")
    out["classes"] = classes
    return out


def find_layout(folder: Path) -> tuple[str, Path]:
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return "folders", folder
    for cand in (folder, folder / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file():
            return "pickles", cand
    raise DataError(f"{folder}: neither train/<class>/ + test/<class>/ folders nor cifar-10-batches-py pickles")


def load_dir(folder: Path) -> dict:
    kind, where = find_layout(folder)
    if kind == "pickles":
        return read_pickles(where)
    xtr, ytr, classes = read_class_folders(where / "train")
    xte, yte, _ = read_class_folders(where / "test", classes)
    return {"train": (xtr, ytr), "test": (xte, yte), "classes": classes}


def limit_per_class(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if n <= 0:
        return x, y
    keep = np.concatenate([np.flatnonzero(y == k)[:n] for k in np.unique(y)])
    keep.sort()
    return x[keep], y[keep]


def write_split(folder: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(folder / f"{split}.npz", x=x, y=y)


def read_split(folder: Path, split: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    path = folder / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with np.load(path) as z:
        if "x" not in z.files or "y" not in z.files:
            raise DataError(f"{path}: needs arrays 'x' and 'y'")
        x, y = z["x"], z["y"]
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataError(f"{path}: images are {x.shape} {x.dtype}; expected N×32×32×3 uint8")
    if y.shape != (len(x),) or y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"{path}: labels must be N integers in 0..{n_classes - 1}")
    return x, y


def write_classes(folder: Path, classes: list[str]) -> None:
    (folder / "classes.json").write_text(json.dumps(classes), encoding="utf-8")


def read_classes(folder: Path) -> list[str]:
    path = folder / "classes.json"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return json.loads(path.read_text(encoding="utf-8"))


def load_prepared(folder: Path) -> tuple[dict, dict]:
    meta = json.loads(read_text(require_file(folder / "meta.json", "vit-prepare")))
    splits = {s: read_split(folder, s, len(meta["classes"])) for s in ("train", "test")}
    return splits, meta
