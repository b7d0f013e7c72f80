"""coco-caption-train resumes after an interruption (an exception, or SIGKILL) to the same weights."""

from __future__ import annotations

import sys

import pytest
import torch
import yaml
from resume_helpers import Interrupted, interrupt_after, kill_after_first_checkpoint, run_stage, same_tensors
from tiny import COMMON

from stages.coco_caption import config, download, evaluate, predict, prepare, train
from stages.common.params import CommonParams

NAME = "h2_l2_lr1e-4"
TINY = {
    "data": {"sample_images": 30, "feature_dim": 16},
    "prepare": {"train_captions": 64, "val_captions": 32},
    "model": {"embed_dim": 16, "ff_dim": 32, "max_length": 20, "dropout": 0.1},
    "train": {"epochs": 4, "batch_size": 32},
}


def tiny() -> config.CocoCaptionParams:
    p = config.CocoCaptionParams()
    for section, values in TINY.items():
        for key, value in values.items():
            setattr(getattr(p, section), key, value)
    return p


def weights(paths: config.Paths) -> dict:
    return torch.load(paths.model(NAME), weights_only=True)["state"]


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch) -> None:
    p, common = tiny(), CommonParams(device="cpu", threads=1, mlflow=False)
    whole, broken = config.Paths(tmp_path / "whole"), config.Paths(tmp_path / "broken")
    for paths in (whole, broken):
        download.run(p, COMMON, paths)
        prepare.run(p, COMMON, paths)
    train.run(p, common, whole, NAME)
    with monkeypatch.context() as m:
        interrupt_after(m, epoch=2)
        with pytest.raises(Interrupted):
            train.run(p, common, broken, NAME)
    assert not broken.model(NAME).exists() and not broken.train_metrics(NAME).exists()
    train.run(p, common, broken, NAME)
    assert same_tensors(weights(whole), weights(broken))
    assert (whole.plots / f"{NAME}_loss.csv").read_text() == (broken.plots / f"{NAME}_loss.csv").read_text()
    assert not any(broken.checkpoints.rglob("*.pt"))


def test_bleu_reaches_mlflow(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p, common = tiny(), CommonParams(device="cpu", threads=1, mlflow=True)
    p.configs = {NAME: p.configs[NAME]}
    p.train.epochs = 1
    paths = config.Paths(tmp_path)
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths, NAME)
    predict.run(p, common, paths, NAME)
    scores = evaluate.run(p, common, paths)[NAME]

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("coco-caption").experiment_id
    (run,) = client.search_runs([experiment], "tags.stage = 'coco-caption-evaluate'")
    assert {k: run.data.metrics[f"{NAME}.{k}"] for k in ("bleu1", "bleu4")} == {
        k: scores[k] for k in ("bleu1", "bleu4")
    }


def test_bad_epochs_after_a_good_run_keep_its_model_and_metrics(tmp_path) -> None:
    """The issue's case: `-S coco-caption.train.epochs=-1` replaced a trained model with an untrained one."""
    p, common = tiny(), CommonParams(device="cpu", threads=1, mlflow=False)
    paths = config.Paths(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"coco-caption": TINY, "common": {"mlflow": False}}))
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths, NAME)
    before = paths.model(NAME).read_bytes(), paths.train_metrics(NAME).read_text()
    bad = {**TINY, "train": {"epochs": -1, "batch_size": 32}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"coco-caption": bad, "common": {"mlflow": False}}))
    result = run_stage(["-m", "stages.coco_caption.train", NAME], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: parameter 'coco-caption.train.epochs' is -1; it must be in [1, 100000]"
    ]
    assert (paths.model(NAME).read_bytes(), paths.train_metrics(NAME).read_text()) == before


def test_sigkill_then_rerun_finishes_with_the_same_weights(tmp_path) -> None:
    p = tiny()
    p.prepare.train_captions, p.train.epochs = 512, 6
    whole = config.Paths(tmp_path / "whole")
    download.run(p, COMMON, whole)
    prepare.run(p, COMMON, whole)
    train.run(p, CommonParams(device="cpu", threads=1, mlflow=False), whole, NAME)

    repo = tmp_path / "repo"
    repo.mkdir()
    section = {**TINY, "prepare": {"train_captions": 512, "val_captions": 32}, "train": {"epochs": 6, "batch_size": 32}}
    (repo / "params.yaml").write_text(
        yaml.safe_dump({"common": {"device": "cpu", "mlflow": False}, "coco-caption": section})
    )
    paths = config.Paths(repo)
    download.run(p, COMMON, paths)  # the same params as params.yaml; only training runs as a process
    prepare.run(p, COMMON, paths)
    cmd = [sys.executable, "-m", "stages.coco_caption.train", NAME]
    assert kill_after_first_checkpoint(cmd, repo, paths.checkpoints) == -9, "the run ended before it could be killed"
    assert not paths.model(NAME).exists()
    done = run_stage(cmd[1:], repo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout
    assert same_tensors(weights(whole), weights(paths))
