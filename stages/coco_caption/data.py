"""The assignment's `coco_captioning/` layout: reading, validating and writing it; the sample set; Flickr8k.

Layout (FORMATS.md):
  coco2014_captions.h5          train_captions (N×17 int32 word ids), train_image_idxs (N), val_captions, val_image_idxs
  train2014_vgg16_fc7_pca.h5    features (train images × 512 float32); val2014_vgg16_fc7_pca.h5 likewise
  coco2014_vocab.json           idx_to_word, word_to_idx; 0..3 = <NULL>, <START>, <END>, <UNK>
  train2014_urls.txt, val2014_urls.txt   one image URL (or, here, a path under images/) per line
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from stages.common.io import DataError, read_json, read_text, require_file, resolve_inside

SPECIAL = ["<NULL>", "<START>", "<END>", "<UNK>"]
NULL, START, END, UNK = range(4)
CAPTION_LEN = 17  # <START> + up to 15 words + <END>, padded with <NULL>
FILES = {
    "captions": "coco2014_captions.h5",
    "train_features": "train2014_vgg16_fc7_pca.h5",
    "val_features": "val2014_vgg16_fc7_pca.h5",
    "vocab": "coco2014_vocab.json",
    "train_urls": "train2014_urls.txt",
    "val_urls": "val2014_urls.txt",
}
CAPTION_KEYS = ("train_captions", "train_image_idxs", "val_captions", "val_image_idxs")


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover
        raise DataError("the coco-caption task needs h5py (pip install h5py)") from None
    return h5py


# ---------------------------------------------------------------- reading + validation


def load_layout(folder: str | Path) -> dict:
    """Read and validate the folder; every problem is a DataError naming the file."""
    h5py = _h5py()
    folder = Path(folder)
    for name in FILES.values():
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: file not found (the coco_captioning layout needs {name})")
    vocab_path = folder / FILES["vocab"]
    vocab = read_json(vocab_path)
    if not isinstance(vocab, dict) or "idx_to_word" not in vocab or "word_to_idx" not in vocab:
        raise DataError(f"{vocab_path}: needs keys 'idx_to_word' and 'word_to_idx'")
    idx_to_word = vocab["idx_to_word"]
    if not isinstance(idx_to_word, list) or idx_to_word[:4] != SPECIAL:
        raise DataError(f"{vocab_path}: idx_to_word must be a list starting with {SPECIAL}")
    bad = next((i for i, w in enumerate(idx_to_word) if not isinstance(w, str)), None)
    if bad is not None:
        raise DataError(f"{vocab_path}: idx_to_word[{bad}] is {idx_to_word[bad]!r}; every word must be a string")
    out: dict = {"idx_to_word": idx_to_word, "word_to_idx": {w: i for i, w in enumerate(idx_to_word)}}
    path = folder / FILES["captions"]
    try:
        with h5py.File(path, "r") as f:
            for key in CAPTION_KEYS:
                if key not in f:
                    raise DataError(f"{path}: missing key '{key}' (has {', '.join(sorted(f.keys()))})")
                out[key] = np.asarray(f[key])
    except (OSError, RuntimeError, KeyError, ValueError) as err:  # h5py's errors for damaged internals
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from None
    for split in ("train", "val"):
        fpath = folder / FILES[f"{split}_features"]
        try:
            with h5py.File(fpath, "r") as f:
                if "features" not in f:
                    raise DataError(f"{fpath}: missing key 'features'")
                out[f"{split}_features"] = np.asarray(f["features"])
        except (OSError, RuntimeError, KeyError, ValueError) as err:  # h5py's errors for damaged internals
            raise DataError(f"{fpath}: not a readable HDF5 file ({err})") from None
        if not np.issubdtype(out[f"{split}_features"].dtype, np.number):
            raise DataError(f"{fpath}: 'features' must be numbers, got {out[f'{split}_features'].dtype}")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes infinity, refused below
            out[f"{split}_features"] = out[f"{split}_features"].astype(np.float32)
        urls_path = folder / FILES[f"{split}_urls"]
        out[f"{split}_urls"] = read_text(urls_path).splitlines()
        caps, idxs, feats = out[f"{split}_captions"], out[f"{split}_image_idxs"], out[f"{split}_features"]
        if caps.ndim != 2 or caps.shape[0] == 0 or caps.shape[1] < 2 or not np.issubdtype(caps.dtype, np.integer):
            raise DataError(
                f"{path}: '{split}_captions' must be an N×T integer array with N ≥ 1 and T ≥ 2 "
                f"(<START> ... <END>), got shape {caps.shape} of {caps.dtype}"
            )
        if idxs.shape != (caps.shape[0],):
            raise DataError(f"{path}: '{split}_image_idxs' has shape {idxs.shape}; expected ({caps.shape[0]},)")
        if not np.issubdtype(idxs.dtype, np.integer):
            raise DataError(f"{path}: '{split}_image_idxs' must be integers (image rows), got {idxs.dtype}")
        if caps.min() < 0 or caps.max() >= len(idx_to_word):
            bad = int(caps.max() if caps.max() >= len(idx_to_word) else caps.min())
            raise DataError(
                f"{path}: '{split}_captions' holds word id {bad}, outside the vocabulary of {len(idx_to_word)}"
            )
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise DataError(f"{fpath}: 'features' must be a non-empty images×D array, got {feats.shape}")
        if not np.isfinite(feats).all():
            row = int(np.argwhere(~np.isfinite(feats))[0, 0])
            raise DataError(f"{fpath}: 'features' holds NaN or infinity (image row {row}); features must be finite")
        if idxs.min() < 0 or idxs.max() >= feats.shape[0]:
            bad = int(idxs.min()) if idxs.min() < 0 else int(idxs.max())
            raise DataError(
                f"{path}: '{split}_image_idxs' points at image {bad}; {fpath.name} has rows 0..{feats.shape[0] - 1}"
            )
        if len(out[f"{split}_urls"]) != feats.shape[0]:
            raise DataError(f"{urls_path}: {len(out[f'{split}_urls'])} lines for {feats.shape[0]} images")
    if out["train_features"].shape[1] != out["val_features"].shape[1]:
        raise DataError(f"{folder}: train and val features differ in width")
    return out


def write_layout(folder: Path, data: dict) -> None:
    h5py = _h5py()
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / FILES["captions"], "w") as f:
        for key in CAPTION_KEYS:
            f.create_dataset(key, data=data[key].astype(np.int32))
    for split in ("train", "val"):
        with h5py.File(folder / FILES[f"{split}_features"], "w") as f:
            f.create_dataset("features", data=data[f"{split}_features"].astype(np.float32))
        (folder / FILES[f"{split}_urls"]).write_text("\n".join(data[f"{split}_urls"]) + "\n", encoding="utf-8")
    vocab = {"idx_to_word": data["idx_to_word"], "word_to_idx": {w: i for i, w in enumerate(data["idx_to_word"])}}
    (folder / FILES["vocab"]).write_text(json.dumps(vocab), encoding="utf-8")


def copy_layout(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        shutil.copyfile(src / name, dest / name)
    if (src / "images").is_dir():
        shutil.copytree(src / "images", dest / "images")


def decode(ids, idx_to_word: list[str]) -> str:
    """Word ids -> text, dropping <NULL>/<START> and stopping at <END>."""
    words = []
    for i in ids:
        i = int(i)
        if i == END:
            break
        if i in (NULL, START):
            continue
        words.append(idx_to_word[i])
    return " ".join(words)


def encode(words: list[str], word_to_idx: dict[str, int], length: int = CAPTION_LEN) -> np.ndarray:
    ids = [START] + [word_to_idx.get(w, UNK) for w in words[: length - 2]] + [END]
    return np.array(ids + [NULL] * (length - len(ids)), dtype=np.int32)


def pca_features(pixels: np.ndarray, dim: int, fit_rows: np.ndarray) -> np.ndarray:
    """Project-computed image features: PCA (fit on the train images) of the flattened downscaled pixels,
    scaled by one number to unit standard deviation on train, zero-padded to `dim` when there are fewer
    train images than dimensions. (No per-component whitening: it would blow up the noise directions of
    unseen images.)"""
    from sklearn.decomposition import PCA

    x = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    k = min(dim, int(fit_rows.sum()) - 1, x.shape[1])
    pca = PCA(n_components=k, random_state=0).fit(x[fit_rows])
    z = pca.transform(x).astype(np.float32)
    z /= max(float(z[fit_rows].std()), 1e-8)
    return np.pad(z, ((0, 0), (0, dim - k))) if k < dim else z


# ---------------------------------------------------------------- the generated sample

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "big")
SIDES = ("left", "right")
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20)}


def _draw(shape: str, color, size: str, side: str, background, rng: np.random.Generator, n: int = 32) -> np.ndarray:
    img = np.empty((n, n, 3), dtype=np.uint8)
    img[:] = background
    r = (5 if size == "small" else 9) + rng.integers(0, 2)
    cx = (n // 4 if side == "left" else 3 * n // 4) + rng.integers(-2, 3)
    cy = n // 2 + rng.integers(-4, 5)
    yy, xx = np.mgrid[:n, :n]
    if shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == "square":
        mask = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8)
    else:
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
    img[mask] = color
    noise = rng.integers(-12, 13, size=img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def sample_captions(shape: str, color: str, size: str, side: str, background: str) -> list[str]:
    return [
        f"a {size} {color} {shape} on the {side}",
        f"a {color} {shape} on a {background} background",
        f"there is a {size} {shape} on the {side} side",
        f"a {size} {color} {shape} in front of a {background} background",
        f"the {shape} is {color} and {size}",
    ]


def make_sample(folder: Path, n_images: int, seed: int, feature_dim: int) -> dict:
    """Scenes of one coloured shape; five template captions each; features = PCA of the pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, captions = [], []
    for _ in range(n_images):
        attrs = (
            SHAPES[rng.integers(len(SHAPES))],
            list(COLORS)[rng.integers(len(COLORS))],
            SIZES[rng.integers(len(SIZES))],
            SIDES[rng.integers(len(SIDES))],
            list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))],
        )
        images.append(_draw(attrs[0], COLORS[attrs[1]], attrs[2], attrs[3], BACKGROUNDS[attrs[4]], rng))
        captions.append(sample_captions(*attrs))
    n_val = max(1, n_images // 5)
    split = np.array(["train"] * (n_images - n_val) + ["val"] * n_val)
    return _assemble(folder, np.stack(images), captions, split, feature_dim, min_count=1, save=Image.fromarray)


def _assemble(folder, images, captions, split, feature_dim, min_count, save, names=None) -> dict:
    """Build the layout from images (N×H×W×3), their caption lists and a train/val split; save thumbnails."""
    counts = Counter(
        w for caps, s in zip(captions, split, strict=True) if s == "train" for c in caps for w in c.split()
    )
    words = sorted(w for w, c in counts.items() if c >= min_count)
    idx_to_word = SPECIAL + words
    word_to_idx = {w: i for i, w in enumerate(idx_to_word)}
    feats = pca_features(images, feature_dim, split == "train")
    data: dict = {"idx_to_word": idx_to_word}
    for s in ("train", "val"):
        rows = np.flatnonzero(split == s)
        data[f"{s}_features"] = feats[rows]
        caps, idxs, urls = [], [], []
        for j, i in enumerate(rows):
            name = names[i] if names is not None else f"{i:05d}.png"
            rel = f"images/{s}/{Path(name).stem}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            save(images[i]).save(folder / rel)
            urls.append(rel)
            for c in captions[i]:
                caps.append(encode(c.split(), word_to_idx))
                idxs.append(j)
        data[f"{s}_captions"], data[f"{s}_image_idxs"], data[f"{s}_urls"] = np.stack(caps), np.array(idxs), urls
    write_layout(folder, data)
    return data


# ---------------------------------------------------------------- Flickr8k-style folders

TOKEN_LINE = re.compile(r"^([^#\t]+)#(\d+)\t(.*)$")


def is_flickr(folder: Path) -> bool:
    return any(folder.rglob("*.token*.txt")) and (folder / "images").is_dir()


def convert_flickr(src: Path, dest: Path, size: int, min_count: int, feature_dim: int) -> dict:
    """Flickr8k (images/ + Flickr8k.token*.txt [+ Flickr_8k.trainImages.txt]) -> the assignment's layout.

    Captions: lower-cased, punctuation dropped, up to 15 words. Split: the official train list when present
    (everything else is val), otherwise 80/20 by file name. Features: PCA of the size×size pixels.
    """
    from PIL import Image

    from stages.common.images import open_rgb

    token_files = sorted(src.rglob("*.token*.txt"))
    captions: dict[str, list[str]] = {}
    for line in read_text(token_files[0]).splitlines():
        if not line.strip():
            continue
        m = TOKEN_LINE.match(line)
        if not m:
            raise DataError(f"{token_files[0]}: line {line[:60]!r} is not '<image>#<n>\\t<caption>'")
        words = re.sub(r"[^a-z0-9 ]", " ", m.group(3).lower()).split()
        captions.setdefault(m.group(1), []).append(" ".join(words))
    for n in captions:  # a name that leaves images/ is refused, never opened
        resolve_inside(src / "images", n, what=token_files[0])
    names = sorted(n for n in captions if (src / "images" / n).is_file())
    if not names:
        raise DataError(f"{src / 'images'}: none of the images named in {token_files[0].name} is there")
    train_list = sorted(src.rglob("Flickr_8k.trainImages.txt"))
    if train_list:
        train_names = set(read_text(train_list[0]).split())
        split = np.array(["train" if n in train_names else "val" for n in names])
    else:
        split = np.array(["train" if i % 5 else "val" for i in range(len(names))])
    images = []
    for n in names:
        image = open_rgb(src / "images" / n, src / "images" / n)
        images.append(np.asarray(image.resize((size, size), Image.BILINEAR)))
    return _assemble(
        dest, np.stack(images), [captions[n] for n in names], split, feature_dim, min_count, Image.fromarray, names
    )


def load_prepared(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(require_file(folder / "data.npz", "coco-caption-prepare")) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(read_text(require_file(folder / "meta.json", "coco-caption-prepare")))
