"""The course's caption files: sample, `dir:` copies (bytes or the `datasets` struct), Flickr8k conversion, and
bad inputs (no caption column, undecodable image, duplicate test idx): one clear error, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny import COMMON

from stages.common.io import DataError
from stages.vlm_caption import config, data, download

ROOT = Path(__file__).resolve().parents[2]


def course_folder(tmp_path: Path, struct: bool = True) -> Path:
    """The four course files, from a tiny sample; images as the datasets struct or as plain bytes."""
    folder = tmp_path / "course"
    made = data.make_sample(6, 3, 4, seed=1)
    data.write_layout(folder, made)
    if not struct:
        for split, cols in data.COLUMNS.items():
            table = {c: [r[c] for r in made[split]] for c in cols}
            pq.write_table(pa.table(table), folder / data.FILES[split])
    return folder


def params(source: str) -> config.VlmCaptionParams:
    p = config.VlmCaptionParams()
    p.data.source = source
    return p


@pytest.mark.parametrize("struct", [True, False])
def test_dir_source_copies_validated_files(tmp_path, struct) -> None:
    folder = course_folder(tmp_path, struct)
    paths = config.Paths(tmp_path / "repo")
    download.run(params(f"dir:{folder}"), COMMON, paths)
    loaded = data.load_layout(paths.raw)
    assert [len(loaded[s]) for s in ("train", "valid", "test")] == [6, 3, 4]
    assert isinstance(loaded["train"][0]["image"], bytes) and loaded["train"][0]["caption"].startswith("a ")


def test_sample_captions_follow_the_drawing() -> None:
    made = data.make_sample(30, 2, 2, seed=0)
    for r in made["train"]:
        words = r["caption"].split()
        assert words[1] in data.COLORS and words[2] in data.SHAPES and words[-1] in data.SIDES
    assert made["train"][0]["image"] == data.make_sample(30, 2, 2, seed=0)["train"][0]["image"]  # deterministic


def rewrite(folder: Path, split: str, **columns) -> None:
    pq.write_table(pa.table(columns), folder / data.FILES[split])


def expect_error(tmp_path: Path, folder: Path, match: str) -> None:
    paths = config.Paths(tmp_path / "repo")
    with pytest.raises(DataError, match=match):
        download.run(params(f"dir:{folder}"), COMMON, paths)
    assert not paths.raw.exists()  # no partial output
    assert not list((tmp_path / "repo").rglob("*.parquet"))


def test_parquet_without_caption_is_an_error(tmp_path) -> None:
    folder = course_folder(tmp_path)
    table = pq.read_table(folder / data.FILES["train"]).drop_columns(["caption"])
    pq.write_table(table, folder / data.FILES["train"])
    expect_error(tmp_path, folder, r"train_data.parquet: missing column 'caption'")


def test_undecodable_image_is_an_error(tmp_path) -> None:
    folder = course_folder(tmp_path)
    rewrite(folder, "valid", image=[b"\x89PNG not really", data.png_bytes(np.zeros((4, 4, 3), np.uint8))],
            caption=["a", "b"])  # fmt: skip
    expect_error(tmp_path, folder, r"valid_data.parquet row 0: not a readable image")


def test_duplicate_test_idx_is_an_error(tmp_path) -> None:
    folder = course_folder(tmp_path)
    img = data.png_bytes(np.zeros((4, 4, 3), np.uint8))
    rewrite(folder, "test", idx=[0, 1, 1], image=[img, img, img])
    expect_error(tmp_path, folder, r"duplicate idx 1 \(rows 1 and 2\)")


def test_submission_template_must_match_the_test_idx(tmp_path) -> None:
    folder = course_folder(tmp_path)
    (folder / data.FILES["submission"]).write_text(json.dumps([{"idx": 0, "output": ""}]))
    expect_error(tmp_path, folder, r"idx do not match the test set")


def test_check_submission_requires_strings_and_every_idx() -> None:
    data.check_submission([{"idx": 1, "output": "x"}, {"idx": 2, "output": "y"}], [2, 1], "s.json")
    with pytest.raises(DataError, match="must be a string"):
        data.check_submission([{"idx": 1, "output": 3}], [1], "s.json")
    with pytest.raises(DataError, match="duplicate idx"):
        data.check_submission([{"idx": 1, "output": "a"}, {"idx": 1, "output": "b"}], [1, 2], "s.json")


def fake_flickr(tmp_path: Path) -> Path:
    src = tmp_path / "flickr"
    (src / "images").mkdir(parents=True)
    lines, splits = [], {"train": [], "dev": [], "test": []}
    for i, split in enumerate(["train", "train", "train", "dev", "test", "none"]):
        name = f"{i:04d}_img.jpg"
        from PIL import Image

        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(src / "images" / name)
        lines += [f"{name}#{k}\tA dog number {i} runs , caption {k} ." for k in range(5)]
        if split != "none":
            splits[split].append(name)
    (src / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, names in splits.items():
        (src / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names) + "\n")
    return src


def test_flickr_folder_is_converted_with_official_splits(tmp_path) -> None:
    paths = config.Paths(tmp_path / "repo")
    download.run(params(f"dir:{fake_flickr(tmp_path)}"), COMMON, paths)
    loaded = data.load_layout(paths.raw)
    assert [len(loaded[s]) for s in ("train", "valid", "test")] == [15, 5, 1]  # 5 rows per image; test per image
    assert loaded["train"][0]["caption"] == "A dog number 0 runs, caption 0."
    assert loaded["test"][0]["idx"] == "0004_img.jpg"
    template = json.loads((paths.raw / data.FILES["submission"]).read_text())
    assert template == [{"idx": "0004_img.jpg", "output": ""}]


def test_stage_error_is_one_line_and_exit_1(tmp_path) -> None:
    folder = course_folder(tmp_path)
    rewrite(folder, "train", image=[data.png_bytes(np.zeros((4, 4, 3), np.uint8))])
    (tmp_path / "params.yaml").write_text(
        f"common: {{mlflow: false}}\nvlm-caption:\n  data:\n    source: dir:{folder}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "stages.vlm_caption.download"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "missing column 'caption'" in result.stderr
    assert not (tmp_path / "data" / "vlm-caption" / "raw").exists()


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [
        ("predict", "{num_beams: 0}", "predict.num_beams"),
        ("predict", "{no_repeat_ngram_size: -1}", "predict.no_repeat_ngram_size"),
        ("train", "{max_steps: 0}", "train.max_steps"),
    ],
)
def test_out_of_range_params_are_named(tmp_path, section, value, key) -> None:
    from stages.common.params import ParamsError

    (tmp_path / "params.yaml").write_text(f"common: {{}}\nvlm-caption:\n  {section}: {value}\n")
    with pytest.raises(ParamsError, match=f"parameter 'vlm-caption.{key}' is .*; it must be"):
        config.load(tmp_path / "params.yaml")


def test_hf_source_reads_a_hub_dataset_with_a_validation_split(tmp_path, monkeypatch) -> None:
    """`hf:` without the network: load_dataset returns what the Hub would, an Image feature and `validation`."""
    import datasets

    made = data.make_sample(5, 2, 3, seed=2)

    def split(rows: list[dict], cols: tuple[str, ...]) -> datasets.Dataset:
        table = {c: [{"bytes": r[c], "path": None} if c == "image" else r[c] for r in rows] for c in cols}
        return datasets.Dataset.from_dict(table).cast_column("image", datasets.Image())

    hub = datasets.DatasetDict(
        train=split(made["train"], data.COLUMNS["train"]),
        validation=split(made["valid"], data.COLUMNS["valid"]),
        test=split(made["test"], data.COLUMNS["test"]),
    )
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name: asked.append(name) or hub)
    paths = config.Paths(tmp_path)
    download.run(params("hf:someone/captions"), COMMON, paths)
    loaded = data.load_layout(paths.raw)
    assert asked == ["someone/captions"]
    assert [len(loaded[s]) for s in ("train", "valid", "test")] == [5, 2, 3]
    assert loaded["valid"][0]["image"] == made["valid"][0]["image"]

    def offline(name: str) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="hf:someone/other: cannot load the dataset"):
        download.run(params("hf:someone/other"), COMMON, config.Paths(tmp_path / "other"))
    assert not (tmp_path / "other" / "data").exists() or not any((tmp_path / "other" / "data").rglob("*.parquet"))


def bomb_png() -> bytes:
    """A PNG whose header claims 30000×30000 pixels: over PIL's decompression-bomb limit."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = struct.pack(">II", 30000, 30000)  # IHDR width, height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # IHDR's CRC over type + data
    return bytes(png)


def test_a_decompression_bomb_in_a_parquet_cell_is_one_error_naming_file_and_row(tmp_path) -> None:
    folder = course_folder(tmp_path)
    good = data.png_bytes(np.zeros((4, 4, 3), np.uint8))
    rewrite(folder, "valid", image=[good, bomb_png()], caption=["a", "b"])
    expect_error(tmp_path, folder, rf"^{folder / data.FILES['valid']} row 1: image too large")


def test_16_bit_images_in_a_parquet_cell_decode_to_their_grey() -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), round(0.46 * 65535), np.uint16)).save(buffer, "PNG")
    rgb = np.asarray(data.decode_image(buffer.getvalue(), "cell"))
    assert rgb.shape == (4, 4, 3) and np.abs(rgb.astype(int) - 117).max() <= 1


def test_a_flickr_token_line_naming_a_file_outside_images_is_refused(tmp_path) -> None:
    src = fake_flickr(tmp_path)
    (tmp_path / "secret.jpg").write_bytes((src / "images" / "0000_img.jpg").read_bytes())
    with (src / "Flickr8k.token.txt").open("a") as f:
        f.write("../../secret.jpg#0\tA secret .\n")
    expect_error(tmp_path, src, rf"^{src / 'Flickr8k.token.txt'}: '../../secret.jpg' leaves {src / 'images'}$")
