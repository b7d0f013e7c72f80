"""The shared mini-ImageNet stages as functions on tiny params: sample, dir:, .zip sources, the fixed data API,
the real folder in ../shared/data (skipped where absent), and every bad input giving one `error:` line."""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tiny import COMMON, tiny_task

from stages.common import cli
from stages.common.io import DataError
from stages.common.params import ParamsError
from stages.mini_imagenet import config, data, download, prepare

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mini_imagenet"


@pytest.fixture
def tiny(tmp_path):
    """Tiny mini-imagenet params from the real defaults, common params without MLflow, paths under tmp_path."""
    return tiny_task("mini-imagenet", config.MiniImagenetParams), COMMON, config.Paths(tmp_path / "repo")


def _layout(folder: Path, n_classes: int = 3, per: int = 2, val_name: str = "val.txt") -> Path:
    """A tiny dataset in the course layout: images/<wnid>/<file>.JPEG plus the three lists."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for s, name in enumerate(("train.txt", val_name, "test.txt")):
        lines = []
        for c in range(n_classes):
            (folder / "images" / f"n{c:08d}").mkdir(parents=True, exist_ok=True)
            for i in range(per):
                rel = f"images/n{c:08d}/n{c:08d}_{s}_{i}.JPEG"
                Image.fromarray(rng.integers(0, 256, (20 + c, 30, 3), dtype=np.uint8)).save(folder / rel, "JPEG")
                lines.append(f"{rel} {c}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def test_sample_download_prepare_and_api(tiny) -> None:
    p, common, paths = tiny
    summary = download.run(p, common, paths)
    assert (summary["train"], summary["val"], summary["test"], summary["num_classes"]) == (30, 20, 20, 10)
    for name in ("train.txt", "val.txt", "test.txt", "classes.txt", "images"):
        assert (paths.raw / name).exists()
    prepare.run(p, common, paths)
    x, y = data.load_split(paths.prepared, "train")
    assert x.shape == (30, 16, 16, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert (
        data.load_classes(paths.prepared)[:2] == ["circle", "square"] and len(data.load_classes(paths.prepared)) == 10
    )
    # load_images decodes exactly as prepare does, in list order
    items = data.read_list(paths.raw / "test.txt", 10)
    assert all(path.is_absolute() for path, _ in items)
    xt, yt = data.load_images(items, 16)
    xp, yp = data.load_split(paths.prepared, "test")
    assert np.array_equal(xt, xp) and np.array_equal(yt, yp)
    t = data.to_tensor(xp[:4])
    assert t.shape == (4, 3, 16, 16) and str(t.dtype) == "torch.float32" and abs(float(t.mean())) < 3
    # deterministic: a second run gives byte-identical arrays
    first = (paths.prepared / "train.npz").read_bytes()
    download.run(p, common, paths)
    prepare.run(p, common, paths)
    assert (paths.prepared / "train.npz").read_bytes() == first


def test_sample_classes_colour_and_shape(tiny) -> None:
    """Colour classes differ in mean colour; shape classes have contrast in every single channel."""
    from stages.mini_imagenet import sample

    rng = np.random.default_rng(0)
    red, blue = sample.render(6, 32, rng).astype(float), sample.render(8, 32, rng).astype(float)
    assert red[..., 0].mean() > red[..., 2].mean() + 10 and blue[..., 2].mean() > blue[..., 0].mean() + 10
    circle = sample.render(0, 32, rng).astype(float)
    assert all(circle[..., c].max() - circle[..., c].min() > 60 for c in range(3))


def test_dir_source_accepts_validation_txt(tiny, tmp_path) -> None:
    p, common, paths = tiny
    src = _layout(tmp_path / "course", val_name="validation.txt")
    p.data.source = f"dir:{src}"
    summary = download.run(p, common, paths)
    assert summary["val"] == 6 and summary["num_classes"] == 3
    assert (paths.raw / "val.txt").is_file() and not (paths.raw / "validation.txt").exists()
    prepare.run(p, common, paths)
    assert data.load_classes(paths.prepared) == ["n00000000", "n00000001", "n00000002"]
    assert data.load_split(paths.prepared, "val")[0].shape == (6, 16, 16, 3)


def test_zip_source_with_top_folder(tiny, tmp_path) -> None:
    p, common, paths = tiny
    src = _layout(tmp_path / "course")
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f"mini/{f.relative_to(src).as_posix()}")
    p.data.source = str(archive)
    assert download.run(p, common, paths)["train"] == 6
    assert len(list((paths.raw / "images").rglob("*.JPEG"))) == 18


def _run_main(stage, p, common, paths, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(lambda: stage.run(p, common, paths))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def _break(kind: str, src: Path) -> str:
    """Corrupt the layout at `src` one way; return what the error must name."""
    train = src / "train.txt"
    lines = train.read_text().splitlines()
    if kind == "missing":
        lines[2] = "images/n00000001/nothing.JPEG 1"
    elif kind == "label":
        lines[3] = lines[3].rsplit(" ", 1)[0] + " 7"
    elif kind == "undecodable":
        (src / lines[4].split()[0]).write_bytes(b"not a jpeg at all")
    elif kind == "two_splits":
        lines[1] = (src / "test.txt").read_text().splitlines()[0]
    elif kind == "not_int":
        lines[1] = lines[1].rsplit(" ", 1)[0] + " one"
    elif kind == "escape":
        (src.parent / "outside.JPEG").write_bytes((src / lines[0].split()[0]).read_bytes())
        lines[5] = "../outside.JPEG 2"
    train.write_text("\n".join(lines) + "\n")
    return {"missing": "train.txt:3", "label": "train.txt:4", "undecodable": "train.txt:5", "two_splits": "train.txt:2",
            "not_int": "train.txt:2", "escape": "train.txt:6"}[kind]  # fmt: skip


@pytest.mark.parametrize("kind", ["missing", "label", "undecodable", "two_splits", "not_int", "escape"])
def test_bad_dataset_one_error_line_output_untouched(tiny, tmp_path, capsys, kind) -> None:
    p, common, paths = tiny
    download.run(p, common, paths)  # an earlier good output
    before = (paths.raw / "train.txt").read_bytes()
    src = _layout(tmp_path / "course")
    where = _break(kind, src)
    p.data.source = f"dir:{src}"
    line = _run_main(download, p, common, paths, capsys)
    assert f"{src}/{where}" in line
    assert (paths.raw / "train.txt").read_bytes() == before
    assert not [f for f in paths.raw.parent.iterdir() if f.name.startswith(".")]  # no temporary left


def test_bad_archives(tiny, tmp_path, capsys) -> None:
    p, common, paths = tiny
    escape = tmp_path / "escape.zip"
    with zipfile.ZipFile(escape, "w") as zf:
        zf.writestr("train.txt", "images/a/x.jpg 0\n")
        zf.writestr("../evil.txt", "boom")
    p.data.source = str(escape)
    assert "outside" in _run_main(download, p, common, paths, capsys)
    assert not (tmp_path / "evil.txt").exists() and not paths.raw.exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("images/a/x.jpg")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    p.data.source = str(link)
    assert "symlink" in _run_main(download, p, common, paths, capsys)
    src = _layout(tmp_path / "course")
    (src / "test.txt").write_text("images/n00000000/n00000000_0_0.JPEG 9\n")
    archive = tmp_path / "images.zip"
    shutil.make_archive(str(archive.with_suffix("")), "zip", src)
    p.data.source = str(archive)
    line = _run_main(download, p, common, paths, capsys)
    assert f"{archive}:test.txt:1" in line and "/tmp" not in line.replace(str(tmp_path), "")


def test_bad_params(tiny) -> None:
    p, common, paths = tiny
    p.data.source = "hf:mini"
    with pytest.raises(ParamsError, match="supported sources"):
        download.run(p, common, paths)
    p.data.source, p.prepare.image_size = "sample", 4
    with pytest.raises(ParamsError, match="image_size"):
        prepare.run(p, common, paths)
    p.data.sample_size = 8
    with pytest.raises(ParamsError, match="sample_size"):
        download.run(p, common, paths)
    with pytest.raises(DataError, match="list file not found"):
        data.read_list(paths.raw / "nope.txt", 3)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/mini_imagenet is not on this machine")
def test_real_folder(tiny) -> None:
    p, common, paths = tiny
    items = data.read_list(REAL / "train.txt", 50)
    assert len(items) == 3000 and {label for _, label in items} == set(range(50))
    x, y = data.load_images(items[:5], 64)
    assert x.shape == (5, 64, 64, 3) and y.tolist() == [label for _, label in items[:5]]
    p.data.source = f"dir:{os.path.relpath(REAL)}"
    summary = download.run(p, common, paths)
    assert (summary["train"], summary["val"], summary["test"], summary["num_classes"]) == (3000, 500, 500, 50)
    prepare.run(p, common, paths)
    assert data.load_split(paths.prepared, "test")[0].shape == (500, 16, 16, 3)
    assert data.load_classes(paths.prepared)[0] == "n01532829"


# --- issue 25: one shared path rule, strict labels, one label per image, encodings, image modes ---------------


@pytest.mark.parametrize("kind", ["absolute", "symlink_file", "symlink_folder"])
def test_a_listed_path_leaving_the_folder_is_refused(tiny, tmp_path, capsys, kind) -> None:
    p, common, paths = tiny
    src = _layout(tmp_path / "course")
    outside = tmp_path / "outside"
    (outside / "n00000000").mkdir(parents=True)
    first = src / (src / "train.txt").read_text().split()[0]
    shutil.copyfile(first, outside / "n00000000" / "x.JPEG")
    if kind == "absolute":
        rel = str(outside / "n00000000" / "x.JPEG")
    elif kind == "symlink_file":
        (src / "images" / "n00000000" / "link.JPEG").symlink_to(outside / "n00000000" / "x.JPEG")
        rel = "images/n00000000/link.JPEG"
    else:
        (src / "images" / "out").symlink_to(outside / "n00000000", target_is_directory=True)
        rel = "images/out/x.JPEG"
    with (src / "train.txt").open("a") as f:
        f.write(f"{rel} 0\n")
    p.data.source = f"dir:{src}"
    line = _run_main(download, p, common, paths, capsys)
    if kind == "absolute":
        assert line == f"error: {src}/train.txt:7: image path {rel!r} leaves the dataset folder"
    else:  # the source's own check (sources.require_dir) names the link before any list is read
        link = src / "images" / ("n00000000/link.JPEG" if kind == "symlink_file" else "out")
        assert line.startswith(f"error: {link}: a symlink to ") and "outside the source folder" in line
    assert not paths.raw.exists()


def test_a_label_is_read_verbatim(tiny, tmp_path, capsys) -> None:
    p, common, paths = tiny
    src = _layout(tmp_path / "course")
    lines = (src / "train.txt").read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 1_0"  # Python's int() reads this as 10
    (src / "train.txt").write_text("\n".join(lines) + "\n")
    p.data.source = f"dir:{src}"
    assert _run_main(download, p, common, paths, capsys) == f"error: {src}/train.txt:3: label '1_0' is not an integer"
    for label in ("٣", "+1", "0x1"):
        (src / "train.txt").write_text(f"{lines[0].rsplit(' ', 1)[0]} {label}\n")
        with pytest.raises(DataError, match=f"train.txt:1: label '{re.escape(label)}' is not an integer"):
            data.read_list(src / "train.txt", 3)


def test_one_image_with_two_labels_is_refused_naming_both_lines(tiny, tmp_path, capsys) -> None:
    p, common, paths = tiny
    src = _layout(tmp_path / "course")
    first = (src / "train.txt").read_text().splitlines()[0].rsplit(" ", 1)[0]
    with (src / "train.txt").open("a") as f:
        f.write(f"{first} 2\n")
    p.data.source = f"dir:{src}"
    line = _run_main(download, p, common, paths, capsys)
    assert line == f"error: {src}/train.txt:7: {first} has label 2, but line 1 gives it 0"
    with (src / "train.txt").open("w") as f:  # the same image twice with one label: a duplicate, not a contradiction
        f.write(f"{first} 0\n{first} 0\n")
    assert len(data.read_list(src / "train.txt", 3)) == 2


def test_a_latin1_classes_txt_is_one_line(tiny, tmp_path, capsys) -> None:
    p, common, paths = tiny
    src = _layout(tmp_path / "course")
    (src / "classes.txt").write_bytes("0 café\n1 thé\n2 crème\n".encode("latin-1"))
    p.data.source = f"dir:{src}"
    line = _run_main(download, p, common, paths, capsys)
    assert line.startswith(f"error: {src}/classes.txt:1: not UTF-8 text (byte 0xe9)")


def test_a_text_file_named_images_zip_is_one_line(tiny, tmp_path, capsys) -> None:
    p, common, paths = tiny
    (tmp_path / "images.zip").write_text("Not Found\n")
    p.data.source = str(tmp_path / "images.zip")
    line = _run_main(download, p, common, paths, capsys)
    assert line == f"error: {tmp_path / 'images.zip'}: not a zip archive (expected the course's images.zip)"


def test_16_bit_and_alpha_images_decode_to_their_colour(tiny, tmp_path) -> None:
    from PIL import Image

    p, common, paths = tiny
    src = _layout(tmp_path / "course")
    train = (src / "train.txt").read_text().splitlines()
    grey, clear = src / train[0].split()[0], src / train[1].split()[0]
    Image.fromarray(np.full((20, 30), round(0.46 * 65535), np.uint16)).save(grey.with_suffix(".png"))
    Image.new("RGBA", (30, 20), (0, 0, 0, 0)).save(clear.with_suffix(".png"))
    train[0], train[1] = (line.replace(".JPEG", ".png") for line in train[:2])
    (src / "train.txt").write_text("\n".join(train) + "\n")
    p.data.source = f"dir:{src}"
    download.run(p, common, paths)
    prepare.run(p, common, paths)
    images, _ = data.load_split(paths.prepared, "train")
    assert np.abs(images[0].astype(int) - 117).max() <= 1  # 46% grey, not white
    assert images[1].min() == 255  # fully transparent: composited on white
