"""The course's caption files: reading, validating and writing them; the generated sample; Flickr8k; the Hub.

The layout (one folder):
  train_data.parquet   image, caption        one row per (image, caption); an image may repeat
  valid_data.parquet   image, caption
  test_data.parquet    idx, image
  sample_submission.json   [{"idx": ..., "output": ...}] one entry per test idx
`image` is encoded image bytes, or the {"bytes": ..., "path": ...} struct that `datasets` writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stages.common.io import DataError, read_text, require_file, resolve_inside

FILES = {
    "train": "train_data.parquet",
    "valid": "valid_data.parquet",
    "test": "test_data.parquet",
    "submission": "sample_submission.json",
}
COLUMNS = {"train": ("image", "caption"), "valid": ("image", "caption"), "test": ("idx", "image")}


# ---------------------------------------------------------------- reading and validating


def image_bytes(value: Any, where: str) -> bytes:
    """The encoded bytes of one `image` cell: raw bytes or the `datasets` {"bytes", "path"} struct."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value)
    raise DataError(f"{where}: image is neither bytes nor a {{'bytes': ..., 'path': ...}} struct with bytes")


def decode_image(data: bytes, where: str) -> Any:
    """PIL RGB image from encoded bytes (common.images.open_rgb: every mode converted properly); an undecodable
    image or a decompression bomb is a DataError naming `where` (the file and row)."""
    from stages.common.images import open_rgb

    return open_rgb(data, where)


def read_split(folder: Path, split: str) -> list[dict]:
    """Rows of one parquet file as dicts with `image` as bytes; checks columns, types, decodability, unique idx."""
    import pyarrow.parquet as pq

    path = folder / FILES[split]
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable parquet file ({err})") from None
    missing = [c for c in COLUMNS[split] if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (columns: {', '.join(table.column_names)})")
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows")
    rows = []
    for i, row in enumerate(tqdm(table.select(list(COLUMNS[split])).to_pylist(), desc=f"check {split}", leave=False)):
        where = f"{path} row {i}"
        image = image_bytes(row["image"], where)
        with decode_image(image, where):
            pass
        out = {"image": image}
        if "caption" in row:
            if not isinstance(row["caption"], str) or not row["caption"].strip():
                raise DataError(f"{where}: caption must be a non-empty string, got {row['caption']!r}")
            out["caption"] = row["caption"].strip()
        if "idx" in row:
            if isinstance(row["idx"], bool) or not isinstance(row["idx"], (int, str)):
                raise DataError(f"{where}: idx must be an integer or a string, got {row['idx']!r}")
            out["idx"] = row["idx"]
        rows.append(out)
    if split == "test":
        seen: dict[Any, int] = {}
        for i, r in enumerate(rows):
            if r["idx"] in seen:
                raise DataError(f"{path}: duplicate idx {r['idx']!r} (rows {seen[r['idx']]} and {i})")
            seen[r["idx"]] = i
    return rows


def read_submission_template(folder: Path, test_ids: list) -> list[dict]:
    path = folder / FILES["submission"]
    template = read_json_list(path)
    check_submission(template, test_ids, path, outputs_must_be_str=False)
    return template


def read_json_list(path: Path) -> list:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: must be a JSON list of {{'idx': ..., 'output': ...}}")
    return data


def check_submission(entries: list, test_ids: list, where: Path | str, outputs_must_be_str: bool = True) -> None:
    """One entry per test idx, each {"idx", "output"}, outputs strings."""
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) != {"idx", "output"}:
            raise DataError(f"{where}: entry {i} must be {{'idx': ..., 'output': ...}}, got {str(e)[:80]}")
        if outputs_must_be_str and not isinstance(e["output"], str):
            raise DataError(f"{where}: entry {i} output must be a string, got {e['output']!r}")
    ids = [e["idx"] for e in entries]
    if len(set(map(repr, ids))) != len(ids):
        raise DataError(f"{where}: duplicate idx in submission")
    if sorted(map(repr, ids)) != sorted(map(repr, test_ids)):
        extra = set(map(repr, ids)) - set(map(repr, test_ids))
        lacking = set(map(repr, test_ids)) - set(map(repr, ids))
        raise DataError(
            f"{where}: idx do not match the test set ({len(ids)} entries for {len(test_ids)} test rows; "
            f"unknown {sorted(extra)[:3]}, missing {sorted(lacking)[:3]})"
        )


def load_layout(folder: Path) -> dict[str, list[dict]]:
    """All three splits, validated, and the submission template checked against the test idx."""
    data = {split: read_split(folder, split) for split in COLUMNS}
    read_submission_template(folder, [r["idx"] for r in data["test"]])
    return data


def write_layout(folder: Path, data: dict[str, list[dict]]) -> None:
    """Write the four files; images as the `datasets` struct {"bytes", "path"}, as the course's files are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split, cols in COLUMNS.items():
        rows = data[split]
        arrays = []
        for c in cols:
            if c == "image":
                arrays.append(pa.array([{"bytes": r["image"], "path": r.get("path")} for r in rows], image_type))
            else:
                arrays.append(pa.array([r[c] for r in rows]))
        pq.write_table(pa.Table.from_arrays(arrays, names=list(cols)), folder / FILES[split])
    template = [{"idx": r["idx"], "output": ""} for r in data["test"]]
    (folder / FILES["submission"]).write_text(json.dumps(template, indent=1) + "\n", encoding="utf-8")


def image_key(data: bytes) -> str:
    """Rows whose images have the same bytes are one image with several reference captions."""
    return hashlib.sha1(data).hexdigest()[:16]


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


# ---------------------------------------------------------------- the generated sample

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
SIDES = ("left", "right")
BACKGROUNDS = ((245, 245, 245), (20, 20, 20), (120, 120, 120))


def draw_scene(shape: str, color: str, side: str, rng: np.random.Generator, n: int = 64) -> np.ndarray:
    """One coloured shape on the left or right half of a noisy plain background."""
    img = np.empty((n, n, 3), dtype=np.int32)
    img[:] = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    r = n // 6 + rng.integers(0, n // 12 + 1)
    cx = (n // 4 if side == "left" else 3 * n // 4) + rng.integers(-n // 16, n // 16 + 1)
    cy = n // 2 + rng.integers(-n // 8, n // 8 + 1)
    yy, xx = np.mgrid[:n, :n]
    if shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == "square":
        mask = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8)
    else:
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
    img[mask] = COLORS[color]
    img += rng.integers(-12, 13, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_caption(shape: str, color: str, side: str) -> str:
    return f"a {color} {shape} on the {side}"


def make_sample(n_train: int, n_valid: int, n_test: int, seed: int) -> dict[str, list[dict]]:
    """Scenes whose caption follows from what is drawn: colour × shape × side (24 captions, 10 words)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict]] = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        rows = []
        for i in range(n):
            attrs = (SHAPES[rng.integers(len(SHAPES))], list(COLORS)[rng.integers(len(COLORS))], SIDES[rng.integers(2)])
            row = {"image": png_bytes(draw_scene(*attrs, rng)), "path": f"{split}_{i:05d}.png"}
            if split == "test":
                row["idx"] = i
            else:
                row["caption"] = sample_caption(*attrs)
            rows.append(row)
        out[split] = rows
    return out


# ---------------------------------------------------------------- Flickr8k-style folders

TOKEN_LINE = re.compile(r"^([^#\t]+)#(\d+)\t(.*)$")


def is_flickr(folder: Path) -> bool:
    return any(folder.rglob("*.token*.txt")) and (folder / "images").is_dir()


def clean_caption(text: str) -> str:
    """Flickr8k's tokenised captions ("A dog runs .") as plain sentences ("A dog runs.")."""
    text = re.sub(r"\s+([.,!?;:])", r"\1", text.strip())
    return re.sub(r"\s+", " ", text)


def convert_flickr(src: Path, test_captions: bool = False) -> dict[str, list[dict]]:
    """Flickr8k (images/ + *.token*.txt [+ Flickr_8k.{train,dev,test}Images.txt]) -> the course's layout.

    Splits: the official lists when present (images in none of them are dropped), otherwise 80/10/10 by
    file name. Train and valid get one row per caption (5 per image); test one row per image, idx = its name.
    An image name that leaves images/ (`..`, absolute, a symlink out: common.io.resolve_inside) is a DataError.
    """
    token_files = sorted(src.rglob("*.token*.txt"))
    captions: dict[str, list[str]] = {}
    for line in read_text(token_files[0]).splitlines():
        if not line.strip():
            continue
        m = TOKEN_LINE.match(line)
        if not m:
            raise DataError(f"{token_files[0]}: line {line[:60]!r} is not '<image>#<n>\\t<caption>'")
        captions.setdefault(m.group(1), []).append(clean_caption(m.group(3)))
    files = {n: resolve_inside(src / "images", n, what=token_files[0]) for n in captions}  # no name leaves images/
    names = sorted(n for n in captions if files[n].is_file())
    if not names:
        raise DataError(f"{src / 'images'}: none of the images named in {token_files[0].name} is there")
    lists = {s: sorted(src.rglob(f"Flickr_8k.{s}Images.txt")) for s in ("train", "dev", "test")}
    if all(lists.values()):
        official = {s: set(read_text(f[0]).split()) for s, f in lists.items()}
        split_of = {n: next((s for s in ("train", "dev", "test") if n in official[s]), None) for n in names}
    else:
        split_of = {n: ("train", "dev", "test", "train", "train", "train", "train", "train", "train", "train")[i % 10]
                    for i, n in enumerate(names)}  # fmt: skip
    out: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for n in tqdm(names, desc="flickr8k", leave=False):
        split = split_of[n]
        if split is None:
            continue
        data = files[n].read_bytes()
        with decode_image(data, str(files[n])):
            pass
        if split == "test":
            out["test"].append({"idx": n, "image": data, "path": n})
        else:
            for c in captions[n]:
                out["train" if split == "train" else "valid"].append({"image": data, "path": n, "caption": c})
    for split, rows in out.items():
        if not rows:
            raise DataError(f"{src}: the {split} split is empty")
    return out


# ---------------------------------------------------------------- Hugging Face Hub


def from_hub(name: str) -> dict[str, list[dict]]:
    """A Hub dataset with train / valid (or validation) / test splits in the course's columns (needs internet)."""
    try:
        import datasets

        ds = datasets.load_dataset(name)
    except Exception as err:  # noqa: BLE001 - offline, unknown name, auth: all one message
        raise DataError(f"hf:{name}: cannot load the dataset ({err})") from None
    aliases = {"train": ("train",), "valid": ("valid", "validation", "dev"), "test": ("test",)}
    out = {}
    for split, names in aliases.items():
        found = next((ds[n] for n in names if n in ds), None)
        if found is None:
            raise DataError(f"hf:{name}: no {split} split (have {', '.join(ds)})")
        found = found.cast_column("image", datasets.Image(decode=False)) if "image" in found.column_names else found
        rows = []
        for i, r in enumerate(found):
            missing = [c for c in COLUMNS[split] if c not in r]
            if missing:
                raise DataError(f"hf:{name} {split}: missing column '{missing[0]}'")
            rows.append(
                {**{c: r[c] for c in COLUMNS[split]}, "image": image_bytes(r["image"], f"hf:{name} {split} {i}")}
            )
        out[split] = rows
    return out


def load_split(prepared: Path, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(require_file(prepared / f"{split}.parquet", "vlm-caption-prepare")).to_pylist()


def messages(instruction: str, caption: str | None = None) -> list[dict]:
    """The course's task as one chat: the user sends the image and the instruction, the assistant the caption."""
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    if caption is not None:
        chat.append({"role": "assistant", "content": [{"type": "text", "text": caption}]})
    return chat


def references(rows: list[dict]) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    for r in rows:
        refs.setdefault(r["key"], []).append(r["caption"])
    return refs
