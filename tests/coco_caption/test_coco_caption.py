"""Every coco-caption stage as a plain function with tiny params on a temporary folder; loaders; bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny import COMMON, tiny_task

from stages.coco_caption import config, data, download, evaluate, package, predict, prepare, train
from stages.coco_caption.data import load_prepared
from stages.common.io import DataError
from stages.common.params import CommonParams, ParamsError

FLICKR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "flickr8k_subset"


def tiny() -> config.CocoCaptionParams:
    return tiny_task("coco-caption", config.CocoCaptionParams)


@pytest.fixture
def common() -> CommonParams:
    return CommonParams(device="cpu", threads=1, mlflow=False)


def test_sample_pipeline_end_to_end(tmp_path, common) -> None:
    paths, p = config.Paths(tmp_path), tiny()
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    for name in p.configs:
        summary = train.run(p, common, paths, name)
        assert summary["final_train_loss"] > 0 and summary["course_target_loss"] == config.TARGET_LOSS[name]
        predict.run(p, common, paths, name)
        assert (paths.plots / f"{name}_loss.png").is_file() and (paths.plots / f"{name}_samples.png").is_file()
    metrics = evaluate.run(p, COMMON, paths)
    assert set(metrics) == set(p.configs)
    for r in metrics.values():
        assert all(0.0 <= r[f"bleu{n}"] <= 1.0 for n in range(1, 5))
    saved = json.loads(paths.metrics.read_text())
    assert saved.keys() == metrics.keys()
    text = package.run(p, COMMON, paths)
    assert "≤ 0.05" in text and paths.report.is_file()
    with pytest.raises(ParamsError, match="unknown configuration"):
        train.run(p, common, paths, "nope")
    # the model file holds plain values only (no code runs when it loads); a damaged one is a DataError naming it
    import torch

    model = paths.model(name)
    assert isinstance(torch.load(model, weights_only=True)["hparams"], dict)
    good = model.read_bytes()
    for bad in (b"", good[: len(good) // 2]):
        model.write_bytes(bad)
        with pytest.raises(DataError, match=f"^{model}: unreadable checkpoint"):
            predict.run(p, common, paths, name)
    torch.save({"weights": torch.zeros(2)}, model)
    with pytest.raises(DataError, match=f"^{model}: not a model written by coco-caption-train"):
        predict.run(p, common, paths, name)


def test_sample_images_outside_the_raw_folder_are_shown_as_text(tmp_path) -> None:
    """A urls line naming a file outside data/coco-caption/raw is never opened: the plot shows the line."""
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"not read")
    rows = {"train": [], "val": [{"url": str(outside), "caption": "a", "ground_truth": "b"},
                                 {"url": "../secret.png", "caption": "a", "ground_truth": "b"}]}  # fmt: skip
    (tmp_path / "raw").mkdir()
    predict.draw_samples(tmp_path / "plot.png", rows, tmp_path / "raw", 2, "x")
    assert (tmp_path / "plot.png").is_file()


def test_prepare_samples_with_replacement_like_the_course(tmp_path) -> None:
    paths, p = config.Paths(tmp_path), tiny()
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    arrays, meta = load_prepared(paths.prepared)
    assert arrays["train_captions"].shape == (64, data.CAPTION_LEN)
    assert arrays["train_features"].shape == (64, 16)
    assert (arrays["train_captions"][:, 0] == data.START).all()
    assert meta["idx_to_word"][:4] == data.SPECIAL


def test_layout_roundtrip_and_decode(tmp_path) -> None:
    out = tmp_path / "raw"
    made = data.make_sample(out, 10, 0, 8)
    loaded = data.load_layout(out)
    np.testing.assert_array_equal(loaded["train_captions"], made["train_captions"])
    words = loaded["idx_to_word"]
    text = data.decode(loaded["train_captions"][0], words)
    assert text and "<" not in text
    np.testing.assert_array_equal(data.encode(text.split(), loaded["word_to_idx"]), loaded["train_captions"][0])


def _course_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "coco_captioning"
    data.make_sample(folder, 10, 0, 8)
    shutil.rmtree(folder / "images")
    return folder


def test_dir_source_copies_the_course_layout(tmp_path) -> None:
    folder = _course_folder(tmp_path)
    p = tiny()
    p.data.source = f"dir:{folder}"
    paths = config.Paths(tmp_path / "repo")
    download.run(p, COMMON, paths)
    assert (paths.raw / "coco2014_captions.h5").is_file()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f, h5py: _del_key(f, h5py, "val_image_idxs"), "missing key 'val_image_idxs'"),
        (lambda f, h5py: _poke(f, h5py, "train_captions", 999), "word id 999, outside the vocabulary"),
        (lambda f, h5py: _set_key(f, h5py, "train_image_idxs", np.zeros((2,))), "has shape"),
        (lambda f, h5py: (f / "coco2014_vocab.json").write_text("{}"), "idx_to_word"),
        (lambda f, h5py: (f / "val2014_urls.txt").unlink(), "file not found"),
        (lambda f, h5py: _poke(f, h5py, "val_image_idxs", -1, (0,)), r"'val_image_idxs' points at image -1;"),
        (
            lambda f, h5py: _poke_features(f, h5py, "val", float("nan")),
            r"val2014_vgg16_fc7_pca.h5: 'features' holds NaN or infinity \(image row 1\)",
        ),
        (
            lambda f, h5py: _poke_features(f, h5py, "train", float("inf")),
            r"train2014_vgg16_fc7_pca.h5: 'features' holds NaN or infinity",
        ),
        (lambda f, h5py: _poke_features(f, h5py, "train", 1e300, float64=True), "NaN or infinity"),  # inf as float32
    ],
)
def test_bad_course_folders_raise_and_leave_nothing(tmp_path, mutate, message) -> None:
    import h5py

    folder = _course_folder(tmp_path)
    mutate(folder, h5py)
    p = tiny()
    p.data.source = f"dir:{folder}"
    paths = config.Paths(tmp_path / "repo")
    with pytest.raises(DataError, match=message):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()
    assert not list(paths.raw.parent.glob("*"))  # no half-written temporary folder either


def _del_key(folder: Path, h5py, key: str) -> None:
    with h5py.File(folder / "coco2014_captions.h5", "a") as f:
        del f[key]


def _poke(folder: Path, h5py, key: str, value: int, where: tuple = (0, 1)) -> None:
    with h5py.File(folder / "coco2014_captions.h5", "a") as f:
        f[key][where] = value


def _poke_features(folder: Path, h5py, split: str, value: float, float64: bool = False) -> None:
    with h5py.File(folder / f"{split}2014_vgg16_fc7_pca.h5", "a") as f:
        features = np.asarray(f["features"], dtype=np.float64 if float64 else np.float32)
        features[1, 2] = value
        del f["features"]
        f.create_dataset("features", data=features)


def _set_key(folder: Path, h5py, key: str, value) -> None:
    with h5py.File(folder / "coco2014_captions.h5", "a") as f:
        del f[key]
        f.create_dataset(key, data=value)


def _flickr_subset(tmp_path: Path, n: int = 24) -> Path:
    if not (FLICKR / "images").is_dir():
        pytest.skip(f"real Flickr8k subset not found at {FLICKR}")
    names = sorted(p.name for p in (FLICKR / "images").iterdir())[:n]
    out = tmp_path / "flickr"
    (out / "images").mkdir(parents=True)
    for name in names:
        shutil.copyfile(FLICKR / "images" / name, out / "images" / name)  # a symlink out of the folder is refused
    token = FLICKR / "Flickr8k_text" / "Flickr8k.token.subset1000.txt"
    lines = [ln for ln in token.read_text().splitlines() if ln.split("#")[0] in set(names)]
    (out / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    return out


def test_flickr_folder_is_converted_to_the_course_layout(tmp_path) -> None:
    src = _flickr_subset(tmp_path)
    p = tiny()
    p.data.source, p.data.flickr_min_count = f"dir:{src}", 1
    paths = config.Paths(tmp_path / "repo")
    download.run(p, COMMON, paths)
    loaded = data.load_layout(paths.raw)
    assert loaded["train_features"].shape[1] == 16
    assert len(loaded["train_urls"]) + len(loaded["val_urls"]) == 24
    assert len(loaded["train_captions"]) + len(loaded["val_captions"]) == 24 * 5
    assert (paths.raw / loaded["val_urls"][0]).is_file()


def test_flickr_unreadable_image_raises(tmp_path) -> None:
    src = _flickr_subset(tmp_path, 6)
    first = sorted((src / "images").iterdir())[0]
    first.unlink()
    first.write_bytes(b"not a jpeg")
    p = tiny()
    p.data.source = f"dir:{src}"
    paths = config.Paths(tmp_path / "repo")
    with pytest.raises(DataError, match=f"^{first}: not a readable image"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()


@pytest.mark.parametrize("name", ["../secret.jpg", "/etc/hostname", "link.jpg"])
def test_flickr_token_file_naming_a_file_outside_images_is_refused(tmp_path, name) -> None:
    src = _flickr_subset(tmp_path, 6)
    (src / "secret.jpg").write_bytes((sorted((src / "images").iterdir())[0]).read_bytes())
    (src / "images" / "link.jpg").symlink_to(src / "secret.jpg")
    token = src / "Flickr8k.token.txt"
    token.write_text(token.read_text() + f"{name}#0\ta secret image\n")
    p = tiny()
    p.data.source = f"dir:{src}"
    paths = config.Paths(tmp_path / "repo")
    with pytest.raises(DataError, match=f"^{token}: '{name}' leaves {src / 'images'}"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()


def test_unknown_folder_and_missing_folder(tmp_path) -> None:
    p = tiny()
    p.data.source = f"dir:{tmp_path}"
    with pytest.raises(DataError, match="neither"):
        download.run(p, COMMON, config.Paths(tmp_path / "repo"))
    p.data.source = f"dir:{tmp_path / 'absent'}"
    with pytest.raises(DataError, match="not found"):
        download.run(p, COMMON, config.Paths(tmp_path / "repo"))
