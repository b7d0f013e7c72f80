"""vit-train resumes after an interruption (an exception, or SIGKILL) to the same weights, in one MLflow run."""

from __future__ import annotations

import sys

import pytest
import torch
import yaml
from resume_helpers import Interrupted, interrupt_after, kill_after_first_checkpoint, run_stage, same_tensors
from tiny import COMMON

from stages.common.params import CommonParams
from stages.vit import config, download, evaluate, prepare, train


def tiny() -> config.VitParams:
    p = config.VitParams()
    p.data.sample_train, p.data.sample_test = 6, 3
    p.model.dim, p.model.depth, p.model.heads, p.model.patch_size, p.model.dropout = 16, 1, 2, 8, 0.1
    p.train.epochs, p.train.batch_size, p.train.warmup_epochs = 4, 16, 1
    p.augment.mixup_alpha, p.augment.cutmix_alpha = 0.2, 1.0  # every random generator in use
    return p


def weights(paths: config.Paths) -> dict:
    return torch.load(paths.model, weights_only=True)["state"]


def test_interrupted_run_resumes_to_the_same_weights_in_one_mlflow_run(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p, quiet = tiny(), CommonParams(device="cpu", threads=1, mlflow=False)
    whole, broken = config.Paths(tmp_path / "whole"), config.Paths(tmp_path / "broken")
    for paths in (whole, broken):
        download.run(p, COMMON, paths)
        prepare.run(p, COMMON, paths)
    train.run(p, quiet, whole)

    tracked = CommonParams(device="cpu", threads=1, mlflow=True)
    with monkeypatch.context() as m:
        interrupt_after(m, epoch=2)
        with pytest.raises(Interrupted):
            train.run(p, tracked, broken)
    assert not broken.model.exists() and not broken.train_metrics.exists()  # nothing half-written
    assert len(list(broken.checkpoints.rglob("epoch-00002.pt"))) == 1
    summary = train.run(p, tracked, broken)
    assert summary["epochs"] == 4
    assert same_tensors(weights(whole), weights(broken))
    assert (whole.plots / "train_history.csv").read_text() == (broken.plots / "train_history.csv").read_text()
    assert not any(broken.checkpoints.rglob("*.pt"))  # scratch removed once the weights are written

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{broken.root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("vit").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags.get("resumed") == "true"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [1, 2, 3, 4]

    metrics = evaluate.run(p, tracked, broken)  # and the evaluation's accuracy reaches MLflow too
    (run,) = client.search_runs([client.get_experiment_by_name("vit").experiment_id], "tags.stage = 'vit-evaluate'")
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]


def test_a_failing_run_keeps_the_previous_model(tmp_path) -> None:
    p, common = tiny(), CommonParams(device="cpu", threads=1, mlflow=False)
    paths = config.Paths(tmp_path)
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    p.train.epochs = 1
    train.run(p, common, paths)
    before = paths.model.read_bytes(), paths.train_metrics.read_text()
    p.model.heads = 3  # 16 % 3: refused before anything is built
    with pytest.raises(Exception, match="divisible"):
        train.run(p, common, paths)
    assert (paths.model.read_bytes(), paths.train_metrics.read_text()) == before


def test_sigkill_then_rerun_finishes_with_the_same_weights(tmp_path) -> None:
    p = tiny()
    p.data.sample_train, p.train.epochs = 30, 6
    whole = config.Paths(tmp_path / "whole")
    download.run(p, COMMON, whole)
    prepare.run(p, COMMON, whole)
    train.run(p, CommonParams(device="cpu", threads=1, mlflow=False), whole)

    repo = tmp_path / "repo"
    repo.mkdir()
    params = {
        "common": {"device": "cpu", "threads": 1, "mlflow": False},
        "vit": {
            "data": {"sample_train": 30, "sample_test": 3},
            "model": {"dim": 16, "depth": 1, "heads": 2, "patch_size": 8, "dropout": 0.1},
            "train": {"epochs": 6, "batch_size": 16, "warmup_epochs": 1},
            "augment": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0},
        },
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    paths = config.Paths(repo)
    download.run(p, COMMON, paths)  # the same params as params.yaml; only training runs as a process
    prepare.run(p, COMMON, paths)
    code = kill_after_first_checkpoint([sys.executable, "-m", "stages.vit.train"], repo, paths.checkpoints)
    assert code == -9, "the run ended before it could be killed"
    assert not paths.model.exists()
    done = run_stage(["-m", "stages.vit.train"], repo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout
    assert same_tensors(weights(whole), weights(paths))
