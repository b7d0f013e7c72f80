"""Sources, layouts and bad inputs of mygo-download / mygo-prepare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import COMMON

from stages.common.io import DataError
from stages.mygo import config, download, prepare
from stages.mygo.data import load_prepared

REPO = Path(__file__).resolve().parents[2]
CIFAR = REPO.parent / "shared" / "data" / "cifar10"


def run_download(tmp_path, source, tiny, **data):
    p = tiny(source=f"dir:{source}", **data)
    paths = config.Paths(tmp_path / "repo")
    download.run(p, COMMON, paths)
    return p, paths


def test_dir_source_class_folders(tmp_path, course_dir, tiny):
    p, paths = run_download(tmp_path, course_dir, tiny)
    assert json.loads((paths.raw / "classes.json").read_text()) == ["anon", "rana", "taki"]
    assert len(list((paths.raw / "train" / "rana").iterdir())) == 3
    prepare.run(p, COMMON, paths)
    data = load_prepared(paths.prepared)
    assert data["train_images"].shape == (9, 16, 16, 3)  # variable sizes resized
    assert data["train_labels"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data["index"]["test_ids"] == ["000", "001", "002", "003"]


def test_dir_source_csv_lists_and_class_param(tmp_path, course_dir, tiny):
    lines = ["name,character"] + [f"train/{c}/{c}{i}.jpg,{c}" for c in ("anon", "rana", "taki") for i in range(3)]
    (course_dir / "train.csv").write_text("\n".join(lines) + "\n")
    p, paths = run_download(tmp_path, course_dir, tiny, train_csv="train.csv", file_column="name",
                            label_column="character", classes=["taki", "rana", "anon"])  # fmt: skip
    assert json.loads((paths.raw / "classes.json").read_text()) == ["taki", "rana", "anon"]
    prepare.run(p, COMMON, paths)
    assert load_prepared(paths.prepared)["train_labels"].tolist() == [2, 2, 2, 1, 1, 1, 0, 0, 0]


def expect_error(tmp_path, source, tiny, match, **data):
    with pytest.raises(DataError, match=match):
        run_download(tmp_path, source, tiny, **data)
    repo = tmp_path / "repo"
    leftovers = [f for f in repo.rglob("*") if f.is_file()] if repo.exists() else []
    assert leftovers == [], f"partial output left behind: {leftovers}"


def test_truncated_jpeg(tmp_path, course_dir, tiny, image):
    bad = image(course_dir / "train" / "rana" / "broken.jpg", size=(64, 64))
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    expect_error(tmp_path, course_dir, tiny, r"broken\.jpg: not a readable image")


def test_class_folder_without_images(tmp_path, course_dir, tiny):
    (course_dir / "train" / "soyo").mkdir()
    (course_dir / "train" / "soyo" / "notes.txt").write_text("no images here")
    expect_error(tmp_path, course_dir, tiny, r"soyo.*has no images")


def test_empty_test_folder(tmp_path, course_dir, tiny):
    shutil.rmtree(course_dir / "test")
    (course_dir / "test").mkdir()
    expect_error(tmp_path, course_dir, tiny, r"test folder has no images")


def test_unknown_label_in_csv(tmp_path, course_dir, tiny):
    (course_dir / "train.csv").write_text("file,label\ntrain/anon/anon0.jpg,anon\ntrain/rana/rana0.jpg,mutsumi\n")
    expect_error(
        tmp_path, course_dir, tiny, r"unknown label 'mutsumi'", train_csv="train.csv", classes=["anon", "rana"]
    )


def test_valid_label_outside_classes(tmp_path, course_dir, tiny, image):
    image(course_dir / "valid" / "uika" / "x.png")
    expect_error(tmp_path, course_dir, tiny, r"unknown label 'uika' in valid")


def test_cli_prints_one_line_and_exits_1(tmp_path, course_dir):
    (course_dir / "test").rename(course_dir / "elsewhere")
    (tmp_path / "params.yaml").write_text(f"common: {{mlflow: false}}\nmygo:\n  data:\n    source: dir:{course_dir}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "stages.mygo.download"]
    out = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: {course_dir / 'test'}: test folder not found (see mygo.data.test_dir)"
    ]
    assert not (tmp_path / "data" / "mygo" / "raw").exists()


@pytest.mark.skipif(
    not CIFAR.is_dir(), reason=f"real stand-in data not found at {CIFAR} (see ../shared/data/cifar10/SOURCE.md)"
)
def test_real_cifar10_layout(tmp_path, tiny):
    """The real CIFAR-10 folders (test/ as validation) through download + prepare, on a 5-per-class slice."""
    mini = tmp_path / "cifar"
    classes = sorted(c.name for c in (CIFAR / "train").iterdir() if c.is_dir())
    assert classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for split, n in (("train", 5), ("test", 2)):
        for c in classes:
            for f in sorted((CIFAR / split / c).iterdir())[:n]:
                (mini / split / c).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, mini / split / c / f.name)
    (mini / "unlabelled").mkdir()
    for i, f in enumerate(sorted((CIFAR / "test" / "cat").iterdir())[100:103]):
        shutil.copyfile(f, mini / "unlabelled" / f"{i:04d}.jpg")
    p, paths = run_download(tmp_path, mini, tiny, valid_dir="test", test_dir="unlabelled")
    p.prepare.image_size = 32
    prepare.run(p, COMMON, paths)
    data = load_prepared(paths.prepared)
    assert data["classes"] == classes
    assert data["train_images"].shape == (50, 32, 32, 3) and data["valid_images"].shape == (20, 32, 32, 3)
    assert np.bincount(data["train_labels"]).tolist() == [5] * 10
    assert data["index"]["test_ids"] == ["0000", "0001", "0002"]


def test_unknown_source_and_params():
    from stages.common.params import ParamsError, from_dict

    with pytest.raises(ParamsError, match="supported sources"):
        download.run(
            config.MygoParams(data=config.DataParams(source="kaggle:x")), COMMON, config.Paths(Path("/nonexistent"))
        )
    with pytest.raises(ParamsError, match="mygo.models.cnn.widht"):
        from_dict(config.MygoParams, {"models": {"cnn": {"widht": 3}}}, "mygo").check()
    with pytest.raises(ParamsError, match="not found"):
        from_dict(config.MygoParams, {"ensemble": ["nope"]}, "mygo").check()


def test_csv_labels_meet_folder_names_by_class_name(tmp_path, course_dir, tiny):
    """Train from class folders `0_anon`…, valid from a CSV labelled by index or by name in any case."""
    for i, name in enumerate(("anon", "rana", "taki")):
        (course_dir / "train" / name).rename(course_dir / "train" / f"{i}_{name}")
    (course_dir / "valid.csv").write_text(
        "file,label\nvalid/anon/vanon.png,0\nvalid/rana/vrana.png,Rana\nvalid/taki/vtaki.png,2_TAKI\n"
    )
    p, paths = run_download(tmp_path, course_dir, tiny, valid_csv="valid.csv")
    assert json.loads((paths.raw / "classes.json").read_text()) == ["0_anon", "1_rana", "2_taki"]
    assert sorted(f.parent.name for f in (paths.raw / "valid").rglob("*.png")) == ["0_anon", "1_rana", "2_taki"]
    prepare.run(p, COMMON, paths)
    assert load_prepared(paths.prepared)["valid_labels"].tolist() == [0, 1, 2]


def test_csv_label_naming_no_class_is_one_error_naming_the_csv_line(tmp_path, course_dir, tiny):
    (course_dir / "valid.csv").write_text("file,label\nvalid/anon/vanon.png,anon\nvalid/rana/vrana.png,3\n")
    expect_error(
        tmp_path, course_dir, tiny, r"valid\.csv line 3: unknown label '3' in valid .*matched by class name",
        valid_csv="valid.csv",
    )  # fmt: skip


# --- issue 25: nothing is read from outside the source; every image mode decodes properly ---------------------


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_csv_row_leaving_the_source_is_refused(tmp_path, course_dir, tiny, image, kind):
    secret = image(tmp_path / "secret.png")
    name = {"dotdot": "../secret.png", "absolute": str(secret), "symlink": "train/anon/link.png"}[kind]
    if kind == "symlink":
        (course_dir / "train" / "anon" / "link.png").symlink_to(secret)
    rows = [f"train/{c}/{c}{i}.jpg,{c}" for c in ("anon", "rana", "taki") for i in range(3)]
    rows.insert(1, f"{name},anon")
    (course_dir / "train.csv").write_text("\n".join(["file,label", *rows]) + "\n")
    csv = course_dir / "train.csv"
    expected = (rf"^{course_dir / name}: a symlink to .*outside the source folder" if kind == "symlink"  # named first
                else rf"^{csv} line 3: '{name}' leaves {course_dir}$")  # fmt: skip
    expect_error(tmp_path, course_dir, tiny, expected, train_csv="train.csv")


@pytest.mark.parametrize("kind", ["file", "class_folder"])
def test_a_symlink_out_of_a_split_folder_is_refused_naming_it(tmp_path, course_dir, tiny, image, kind):
    if kind == "file":
        link = course_dir / "train" / "anon" / "link.jpg"
        link.symlink_to(image(tmp_path / "elsewhere" / "secret.jpg"))
    else:
        link = course_dir / "train" / "soyo"
        image(tmp_path / "elsewhere" / "secret.jpg")
        link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    expect_error(tmp_path, course_dir, tiny, rf"^{link}: a symlink to .*, outside the source folder")


def test_a_symlink_inside_a_split_folder_is_followed(tmp_path, course_dir, tiny):
    (course_dir / "train" / "anon" / "again.jpg").symlink_to(course_dir / "train" / "anon" / "anon0.jpg")
    _, paths = run_download(tmp_path, course_dir, tiny)
    copied = paths.raw / "train" / "anon" / "again.jpg"
    assert not copied.is_symlink() and copied.read_bytes() == (course_dir / "train" / "anon" / "anon0.jpg").read_bytes()


def test_16_bit_palette_and_alpha_images_decode_to_their_colour(tmp_path, course_dir, tiny):
    from PIL import Image

    anon = course_dir / "train" / "anon"
    Image.fromarray(np.full((16, 16), round(0.46 * 65535), np.uint16)).save(anon / "anon0.png")
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    palette.save(anon / "anon1.png")
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(anon / "anon2.png")
    for i in range(3):
        (anon / f"anon{i}.jpg").unlink()
    p, paths = run_download(tmp_path, course_dir, tiny)
    prepare.run(p, COMMON, paths)
    train = load_prepared(paths.prepared)["train_images"]
    assert np.abs(train[0].astype(int) - 117).max() <= 1  # 46% grey, not white
    assert np.abs(train[1].astype(int) - (200, 30, 30)).max() <= 1
    assert train[2].min() == 255  # fully transparent: composited on white
