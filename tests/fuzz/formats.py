"""A small VALID input of every format a user gives a task, and the download stage that reads it in-process.

The fuzzers derive bad inputs from these; the issue sweeps build their cases on them. Each builder writes a
`dir:` source folder that the task's download stage accepts (test_fuzz_inputs.py checks that first).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from fuzz.contract import Outcome, call

# ---------------------------------------------------------------- images


def image_bytes(mode: str = "RGB", size: tuple[int, int] = (32, 32), seed: int = 0, fmt: str = "PNG") -> bytes:
    """An encoded image of `mode` with some structure (a gradient plus noise), deterministic in `seed`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    rgb = (np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3)) + rng.normal(0, 20, (h, w, 3))).clip(0, 255)
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    if mode in ("I;16", "I"):
        img = Image.fromarray((rgb[..., 0] * 257).astype(np.uint16 if mode == "I;16" else np.int32))
    elif mode == "PA":
        img = img.convert("P").convert("PA")
    elif mode != "RGB":
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def grey16_png(fraction: float = 0.46, size: tuple[int, int] = (32, 32)) -> bytes:
    """A 16-bit greyscale PNG, every pixel at `fraction` of full scale (0.46 -> 30146 of 65535, ~117 of 255)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full(size[::-1], round(fraction * 65535), np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes of PNG whose header claims width × height pixels (above PIL's decompression-bomb
    limit by default): a reader must refuse it before allocating, not die trying."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 4)  # the first rows only
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- valid sources, one per format


def pokemon_source(d: Path) -> None:
    """The course's two text files: 792 sprites of 400 palette indices, a palette of 167 `R G B` rows."""
    d.mkdir(parents=True)
    (d / "colormap.txt").write_text("".join(f"{i} {(i * 7) % 256} {(i * 13) % 256}\n" for i in range(167)))
    (d / "pixel_color.txt").write_text(
        "".join(" ".join(str((i + j) % 167) for j in range(400)) + "\n" for i in range(792))
    )


def news_course_source(d: Path) -> None:
    """News_train.json (id, text, label: two classes) and News_test.json (id, text)."""
    d.mkdir(parents=True)
    words = {"sports": "match goal team striker", "world": "minister border treaty summit"}
    train = [{"id": i, "text": f"{words[c]} report {i}", "label": c} for i, c in enumerate(["sports", "world"] * 8)]
    (d / "News_train.json").write_text(json.dumps(train, indent=1))
    (d / "News_test.json").write_text(json.dumps([{"id": 100 + i, "text": f"news item {i}"} for i in range(4)]))


def news_ag_source(d: Path) -> None:
    """AG News in its original CSV form: "class","title","description", classes 1..4, no header."""
    d.mkdir(parents=True)
    rows = "".join(f'"{1 + i % 4}","Title {i}","Body text number {i}"\n' for i in range(16))
    (d / "train.csv").write_text(rows)
    (d / "test.csv").write_text("".join(f'"{1 + i % 4}","Test {i}","Test body {i}"\n' for i in range(4)))


def mygo_folders_source(d: Path) -> None:
    """train/<class>/, valid/<class>/ and test/ image folders (two classes)."""
    for split, n in (("train", 2), ("valid", 1)):
        for c, name in enumerate(("anon", "tomori")):
            (d / split / name).mkdir(parents=True)
            for i in range(n):
                (d / split / name / f"{name}_{i}.png").write_bytes(image_bytes(size=(24, 24), seed=10 * c + i))
    (d / "test").mkdir()
    for i in range(2):
        (d / "test" / f"{i:04d}.jpg").write_bytes(image_bytes(size=(24, 24), seed=50 + i, fmt="JPEG"))


def mygo_csv_source(d: Path) -> None:
    """The class folders, but train listed in train.csv (`file,label`, paths relative to the CSV)."""
    mygo_folders_source(d)
    rows = [f"{p.relative_to(d).as_posix()},{p.parent.name}" for p in sorted((d / "train").rglob("*.png"))]
    (d / "train.csv").write_text("file,label\n" + "\n".join(rows) + "\n")


def coco_source(d: Path) -> None:
    """The assignment's coco_captioning layout: captions/indices HDF5, two feature HDF5 files, vocab, URLs."""
    from stages.coco_caption import data

    data.make_sample(d, 12, 0, 8)


def vit_folders_source(d: Path) -> None:
    """CIFAR-10 as class folders: train/<class>/*.png and test/<class>/*.png, 32×32."""
    for split in ("train", "test"):
        for c, name in enumerate(("cat", "dog")):
            (d / split / name).mkdir(parents=True)
            for i in range(2):
                (d / split / name / f"{i}.png").write_bytes(image_bytes(seed=100 * c + i))


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}


def vit_pickles_source(d: Path) -> None:
    """The official cifar-10-batches-py: data_batch_1..5, test_batch and batches.meta (the format is pickle)."""
    d.mkdir(parents=True)
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(4, i), protocol=2))
    (d / "test_batch").write_bytes(pickle.dumps(cifar_batch(10, 0), protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))


def ddpm_source(d: Path) -> None:
    """A folder of face images (any size: prepare crops and resizes), one in a sub-folder."""
    (d / "more").mkdir(parents=True)
    for i in range(3):
        (d / f"{i:06d}.jpg").write_bytes(image_bytes(size=(40, 48), seed=i, fmt="JPEG"))
    (d / "more" / "000004.png").write_bytes(image_bytes(size=(40, 40), seed=4))


def vlm_source(d: Path) -> None:
    """The course's train/valid/test parquet files (image bytes + caption, or idx) and sample_submission.json."""
    from stages.vlm_caption import data

    data.write_layout(d, data.make_sample(3, 2, 2, 0))


def mini_imagenet_source(d: Path) -> None:
    """images/<wnid>/<file>, train.txt, val.txt, test.txt (`<path> <label>`) and classes.txt."""
    from stages.mini_imagenet import sample

    sample.write(d, {"train": 1, "val": 1, "test": 1}, 16, 0)


@dataclasses.dataclass(frozen=True)
class Format:
    """One input format: its task (params section), the package whose download stage reads it, a builder of a
    valid source folder, and more `data:` params the source needs."""

    name: str
    task: str
    package: str
    build: Callable[[Path], None]
    data: dict = dataclasses.field(default_factory=dict)


FORMATS = [
    Format("pokemon-txt", "pokemon", "pokemon", pokemon_source),
    Format("news-json", "news", "news", news_course_source),
    Format("news-ag-csv", "news", "news", news_ag_source),
    Format("mygo-folders", "mygo", "mygo", mygo_folders_source),
    Format("mygo-csv", "mygo", "mygo", mygo_csv_source, {"train_csv": "train.csv"}),
    Format("coco-h5", "coco-caption", "coco_caption", coco_source, {"feature_dim": 8}),
    Format("vit-folders", "vit", "vit", vit_folders_source),
    Format("vit-pickles", "vit", "vit", vit_pickles_source),
    Format("ddpm-images", "ddpm", "ddpm", ddpm_source),
    Format("vlm-parquet", "vlm-caption", "vlm_caption", vlm_source),
    Format("mini-imagenet-lists", "mini-imagenet", "mini_imagenet", mini_imagenet_source),
]
BY_NAME = {f.name: f for f in FORMATS}

_built: dict[str, Path] = {}


def build_valid(fmt: Format, dest: Path, cache: Path) -> None:
    """A copy of `fmt`'s valid source at `dest` (built once into `cache`, then copied: links stay links)."""
    if fmt.name not in _built:
        folder = cache / fmt.name
        fmt.build(folder)
        _built[fmt.name] = folder
    shutil.copytree(_built[fmt.name], dest, symlinks=True)


def tiny_section(task: str) -> dict:
    from tiny import tiny_sections

    return tiny_sections()[task]


def write_params(root: Path, task: str, section: dict, text: str | None = None) -> Path:
    """`root/params.yaml`: CPU, one thread, no MLflow, and `section` as the task's (or `text` verbatim)."""
    path = root / "params.yaml"
    common = {"device": "cpu", "threads": 1, "mlflow": False}
    path.write_text(text if text is not None else yaml.safe_dump({"common": common, task: section}))
    return path


def download_params(fmt: Format, root: Path, source: Path) -> Path:
    """`root/params.yaml`: the task's tiny params reading `source` as `dir:`."""
    section = tiny_section(fmt.task)
    section["data"] = {**section.get("data", {}), "source": f"dir:{source}", **fmt.data}
    return write_params(root, fmt.task, section)


def run_download(fmt: Format, root: Path) -> Outcome:
    """The task's download stage, in-process, with `root/params.yaml` (download_params), into `root/data`."""
    params = root / "params.yaml"
    config = importlib.import_module(f"stages.{fmt.package}.config")
    download = importlib.import_module(f"stages.{fmt.package}.download")
    return call(lambda: download.run(*config.load(params), config.Paths(root)))
