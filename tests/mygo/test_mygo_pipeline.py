"""Every mygo step as a plain function, end to end on tiny generated data in tmp_path."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from tiny import COMMON

from stages.common.io import DataError
from stages.mygo import config, download, evaluate, package, predict, prepare, train
from stages.mygo.data import load_prepared


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(folder).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def test_end_to_end(tmp_path, tiny, common):
    p, paths = tiny(), config.Paths(tmp_path)
    download.run(p, COMMON, paths)
    assert json.loads((paths.raw / "classes.json").read_text())[0] == "0_tomori"
    prepare.run(p, COMMON, paths)
    data = load_prepared(paths.prepared)
    assert data["train_images"].shape == (40, 16, 16, 3) and data["train_images"].dtype == np.uint8
    assert data["valid_labels"].tolist() == sorted(data["valid_labels"].tolist())
    assert len(data["index"]["test_ids"]) == 6

    for name in p.ensemble:
        summary = train.run(p, common, paths, name)
        assert summary["epochs_run"] == 2 and 0 <= summary["best_valid_accuracy"] <= 1
        assert paths.model(name).is_file() and (paths.plots / f"train_{name}.csv").is_file()
    assert not any(paths.checkpoints.rglob("*.pt")), "checkpoints are cleared after training"

    predict.run(p, common, paths)
    logits = np.load(paths.predictions / "a_valid.npy")
    assert logits.shape == (2, 20, 10)  # views identity + hflip, 20 valid images, 10 classes
    metrics = evaluate.run(p, common, paths)
    assert set(metrics["models"]) == {"a", "b"} and 0 <= metrics["accuracy"] <= 1
    assert (paths.plots / "confusion.png").is_file() and (paths.plots / "misclassified.png").is_file()

    package.run(p, COMMON, paths)
    rows = list(csv.DictReader(paths.submission.open()))
    assert [r["id"] for r in rows] == data["index"]["test_ids"]
    assert all(0 <= int(r["label"]) < 10 for r in rows)
    assert "mygo" in paths.report.read_text()


def test_sample_and_training_are_deterministic(tmp_path, tiny, common):
    p = tiny()
    p.ensemble, p.train.epochs = ["a"], 1
    digests = []
    for run_dir in ("one", "two"):
        paths = config.Paths(tmp_path / run_dir)
        download.run(p, COMMON, paths)
        prepare.run(p, COMMON, paths)
        train.run(p, common, paths, "a")
        digests.append((tree_digest(paths.raw), tree_digest(paths.prepared), paths.model("a").read_bytes()))
    assert digests[0] == digests[1]


def test_train_resumes_from_checkpoint(tmp_path, tiny, common, monkeypatch):
    p, paths = tiny(), config.Paths(tmp_path)
    p.ensemble = ["a"]
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    calls = {"n": 0}
    real_save = train.save

    def interrupted_save(*args, **kwargs):
        raise KeyboardInterrupt  # dies after the last epoch's checkpoint, before the final weights

    monkeypatch.setattr(train, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        train.run(p, common, paths, "a")
    assert not paths.model("a").exists()
    assert list(paths.checkpoints.rglob("epoch-00002.pt"))

    def counting_save(*args, **kwargs):
        calls["n"] += 1
        return real_save(*args, **kwargs)

    monkeypatch.setattr(train, "save", counting_save)
    summary = train.run(p, common, paths, "a")  # resumes: no epoch left to run
    assert calls["n"] == 1 and summary["epochs_run"] == 2 and paths.model("a").is_file()


def test_predict_needs_trained_models(tmp_path, tiny, common):
    p, paths = tiny(), config.Paths(tmp_path)
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    with pytest.raises(DataError, match="file not found; run mygo-train first"):
        predict.run(p, common, paths)
    assert not paths.predictions.exists()


def test_early_stopping_on_validation_accuracy(tmp_path, tiny, common, monkeypatch):
    p, paths = tiny(), config.Paths(tmp_path)
    p.ensemble, p.train.epochs, p.train.patience = ["a"], 6, 2
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    monkeypatch.setattr(train, "evaluate", lambda *args, **kwargs: (1.0, 0.5))  # never improves after epoch 1
    summary = train.run(p, common, paths, "a")
    assert summary["best_epoch"] == 1 and summary["epochs_run"] == 3
