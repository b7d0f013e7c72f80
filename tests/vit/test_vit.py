"""Every vit stage as a plain function with tiny params on a temporary folder; CIFAR-10 readers; bad inputs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import COMMON, tiny_task

from stages.common.headlines import detail_path, metrics_view
from stages.common.io import DataError
from stages.common.params import CommonParams, ParamsError
from stages.vit import config, data, download, evaluate, package, prepare, train
from stages.vit.model import ViT

CIFAR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cifar10"


def tiny() -> config.VitParams:
    return tiny_task("vit", config.VitParams)


@pytest.fixture
def common() -> CommonParams:
    return CommonParams(device="cpu", threads=1, mlflow=False)


def test_sample_pipeline_end_to_end(tmp_path, common) -> None:
    paths, p = config.Paths(tmp_path), tiny()
    p.augment.randaugment, p.augment.mixup_alpha, p.augment.cutmix_alpha, p.augment.label_smoothing = (
        True,
        0.2,
        1.0,
        0.1,
    )
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    summary = train.run(p, common, paths)
    assert summary["epochs"] == 2 and summary["final_train_loss"] > 0
    metrics = evaluate.run(p, common, paths)
    assert 0 <= metrics["test_accuracy"] <= 1 and len(metrics["per_class_test_accuracy"]) == 10
    assert json.loads(detail_path(paths.root, config.TASK).read_text())["test_images"] == 30
    assert json.loads(paths.metrics.read_text()) == metrics_view(config.TASK, metrics)
    for name in ("acc_out.png", "loss_out.png", "train_history.csv", "confusion_matrix.png"):
        assert (paths.plots / name).is_file()
    assert "≥ 0.65" in package.run(p, COMMON, paths)
    # the model file holds plain values only (no code runs when it loads); a damaged one is a DataError naming it
    saved = torch.load(paths.model, weights_only=True)
    assert isinstance(saved["hparams"], dict) and isinstance(saved["mean"], list)
    good = paths.model.read_bytes()
    for bad in (b"", good[: len(good) // 2]):
        paths.model.write_bytes(bad)
        with pytest.raises(DataError, match=f"^{paths.model}: unreadable checkpoint"):
            evaluate.run(p, common, paths)
    torch.save({"weights": torch.zeros(2)}, paths.model)
    with pytest.raises(DataError, match=f"^{paths.model}: not a model written by vit-train"):
        evaluate.run(p, common, paths)


def test_bad_params(tmp_path, common) -> None:
    paths, p = config.Paths(tmp_path), tiny()
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    p.model.heads = 3
    with pytest.raises(ParamsError, match="divisible"):
        config.validate(p)  # what every stage's config.load runs before anything is built
    p.data.source = "hf:cifar10"
    with pytest.raises(ParamsError, match="supported sources"):
        download.run(p, COMMON, paths)


def test_vit_shapes_and_learned_positions() -> None:
    model = ViT(10, 32, 4, 32, 1, 4, 2.0)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert model.pos.pe.shape == (65, 32)  # 64 patches + the class token


def _pickles(folder: Path, n: int = 20) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in data.CIFAR_CLASSES]}))
    return folder


def test_official_pickles(tmp_path) -> None:
    src = _pickles(tmp_path / "cifar-10-batches-py")
    p = tiny()
    p.data.source = f"dir:{tmp_path}"
    paths = config.Paths(tmp_path / "repo")
    download.run(p, COMMON, paths)
    x, y = data.read_split(paths.raw, "train", 10)
    assert x.shape == (100, 32, 32, 3) and data.read_classes(paths.raw) == data.CIFAR_CLASSES
    raw = pickle.loads((src / "data_batch_1").read_bytes())[b"data"][0]
    np.testing.assert_array_equal(x[0], raw.reshape(3, 32, 32).transpose(1, 2, 0))


def test_bad_pickle_raises_and_leaves_nothing(tmp_path) -> None:
    src = _pickles(tmp_path / "cifar-10-batches-py")
    (src / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    p = tiny()
    p.data.source = f"dir:{src}"
    paths = config.Paths(tmp_path / "repo")
    with pytest.raises(DataError, match="test_batch: data is"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()


def _folders(tmp_path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / "cf" / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    tmp_path / "cf" / split / c / f"{i}.png"
                )
    return tmp_path / "cf"


def test_class_folders_and_unreadable_image(tmp_path) -> None:
    src = _folders(tmp_path)
    p = tiny()
    p.data.source = f"dir:{src}"
    paths = config.Paths(tmp_path / "repo")
    download.run(p, COMMON, paths)
    assert data.read_classes(paths.raw) == ["cat", "dog"]
    (src / "test" / "dog" / "1.png").write_bytes(b"broken")
    paths2 = config.Paths(tmp_path / "repo2")
    with pytest.raises(DataError, match="1.png: not a readable image"):
        download.run(p, COMMON, paths2)
    assert not paths2.raw.exists()


def test_real_cifar10_folders(tmp_path) -> None:
    if not (CIFAR / "train").is_dir():
        pytest.skip(f"real CIFAR-10 subset not found at {CIFAR}")
    p = tiny()
    p.data.source = f"dir:{CIFAR}"
    p.data.max_train_per_class, p.data.max_test_per_class = 5, 2
    paths = config.Paths(tmp_path)
    download.run(p, COMMON, paths)
    x, y = data.read_split(paths.raw, "train", 10)
    assert x.shape == (50, 32, 32, 3) and np.bincount(y).tolist() == [5] * 10
    assert data.read_classes(paths.raw) == data.CIFAR_CLASSES
