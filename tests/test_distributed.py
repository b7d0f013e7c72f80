"""Data-parallel training (issue 16): gloo, 2 CPU processes, tiny params, against 1 process.

Each trainer runs as `python -m stages.<task>.train` in a temporary folder (its own params.yaml, data and
MLflow sqlite store). With `common.nproc: 2` it re-runs itself under torchrun; the global batch is the
same, so the per-epoch loss history must match one process's up to float reduction order, and rank 0
alone writes the outputs and the one MLflow run.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny import ROOT, tiny_sections

from stages.common import distributed
from stages.common.params import COMMON_RANGES, CommonParams, ParamsError, check_ranges

TIMEOUT = 240  # seconds per training subprocess: ~15 s idle, several times that on the loaded 2-core machine


def test_shard_is_the_strided_share_of_the_global_batch_and_weights_the_uneven_last_one(monkeypatch):
    import torch

    batch = torch.arange(5)
    assert distributed.shard(batch) == (batch, 1.0)  # one process: the whole batch, unweighted
    monkeypatch.setattr(distributed, "_world", 2)
    monkeypatch.setattr(distributed, "_rank", 1)
    local, weight = distributed.shard(batch)
    assert local.tolist() == [1, 3] and weight == pytest.approx(2 * 2 / 5)
    local, weight = distributed.shard(torch.arange(1))  # nothing left for rank 1: a stand-in with weight 0
    assert local.tolist() == [0] and weight == 0.0
    monkeypatch.setattr(distributed, "_rank", 0)
    assert distributed.shard(batch)[0].tolist() == [0, 2, 4]


def test_nproc_is_checked_and_must_divide_the_global_batch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ParamsError, match="'common.nproc' is 0"):
        check_ranges(CommonParams(nproc=0), "common", COMMON_RANGES)
    assert distributed.check_batch(32, "news.train.batch_size", 2) == 16
    with pytest.raises(ParamsError, match="'news.train.batch_size' is 30; with 4 processes"):
        distributed.check_batch(30, "news.train.batch_size", 4)
    assert distributed.launch_if_needed(1) is False  # one process: train right here
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launch_if_needed(2) is False  # already a torchrun rank


# --- 2 processes against 1, end to end ------------------------------------------------------------------

# Per task: the params overrides (on tests/tiny_params.yaml), the stage's argv, its history CSV and loss
# columns, and the outputs rank 0 writes. Dropout 0 and no augmentation, so that the only randomness is
# the data order and the noise, which the trainers draw for the global batch as one process does.
TASKS = {
    "news": ({"model": {"dropout": 0.0}}, [], "plots/news/train_history.csv", ["train_loss", "val_loss"],
             ["models/news/model.pt", "metrics/news_train.json", "plots/news/loss.png", "timings/news-train.json"]),
    "mygo": ({"train": {"augment": [], "mixup_alpha": 0.0, "cutmix_alpha": 0.0}}, ["cnn"],
             "plots/mygo/train_cnn.csv", ["train_loss", "valid_loss"],
             ["models/mygo/cnn.pt", "metrics/mygo_train_cnn.json", "plots/mygo/train_cnn.png"]),
    "ddpm": ({}, [], "plots/ddpm/train_history.csv", ["loss"],
             ["models/ddpm/model.pt", "metrics/ddpm_train.json", "plots/ddpm/loss.png", "timings/ddpm-train.json"]),
}  # fmt: skip
# Tolerance: the float sums run in another order (each process sums its half batch, DDP averages the
# halves), which moves a loss by ~1e-8 here (measured: news equal to the CSV's 6 decimals, ddpm 5e-8);
# 1e-5 leaves room for other CPUs and still catches a wrong batch, weight or data order (≥ 1e-3).
# mygo's CNN has BatchNorm, whose statistics each CPU process computes over its own half batch
# (SyncBatchNorm needs CUDA): a real difference of the method, not of rounding; measured 0.6 %, allowed 2 %.
TOLERANCE = {"news": 1e-5, "mygo": 0.02, "ddpm": 1e-5}


def prepare(task: str, root: Path) -> None:
    """The task's download and prepare stages on tiny params, as functions, into `root`."""
    import importlib

    from tiny import COMMON, tiny_task

    config = importlib.import_module(f"stages.{task}.config")
    schema = {"news": config.__dict__.get("NewsParams"), "mygo": config.__dict__.get("MygoParams"),
              "ddpm": config.__dict__.get("DdpmParams")}[task]  # fmt: skip
    p, paths = tiny_task(task, schema), config.Paths(root)
    for step in ("download", "prepare"):
        importlib.import_module(f"stages.{task}.{step}").run(p, COMMON, paths)


def write_params(task: str, root: Path, nproc: int, mlflow: bool) -> None:
    overrides = TASKS[task][0]
    sections = tiny_sections()
    sections["common"].update(device="cpu", threads=1, nproc=nproc, mlflow=mlflow)
    for key, value in overrides.items():
        sections[task][key] = {**sections[task].get(key, {}), **value}
    (root / "params.yaml").write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")


def train_here(task: str, root: Path) -> None:
    """One process, in this process: the trainer as a function, on `root`'s params.yaml (no MLflow)."""
    import importlib

    write_params(task, root, 1, mlflow=False)
    config = importlib.import_module(f"stages.{task}.config")
    importlib.import_module(f"stages.{task}.train").run(
        *config.load(root / "params.yaml"), config.Paths(root), *TASKS[task][1]
    )


def train(task: str, root: Path, nproc: int, mlflow: bool) -> subprocess.CompletedProcess:
    """`python -m stages.<task>.train` in `root` (it launches torchrun itself when nproc > 1)."""
    write_params(task, root, nproc, mlflow)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": ""}
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", f"stages.{task}.train", *TASKS[task][1]], cwd=root, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip


def history(path: Path, columns: list[str]) -> list[float]:
    """The loss columns of every logged epoch (or step), row after row."""
    with path.open(newline="") as f:
        return [float(row[c]) for row in csv.DictReader(f) for c in columns]


def mlflow_runs(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / "mlflow.db") as db:
        return db.execute("SELECT name, status FROM runs").fetchall()


@pytest.fixture(scope="module")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite store with its tables made, once: creating them costs each run ~10 s of CPU."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.mark.parametrize("task", list(TASKS))
def test_two_processes_train_what_one_does_and_write_once(task, tmp_path, empty_mlflow_db):
    one, two = tmp_path / "one", tmp_path / "two"
    prepare(task, one)
    shutil.copytree(one / "data", two / "data")
    shutil.copy(empty_mlflow_db, two / "mlflow.db")
    _, _, csv_path, columns, outputs = TASKS[task]

    train_here(task, one)
    double = train(task, two, 2, mlflow=True)
    assert double.returncode == 0, double.stderr[-2000:]

    expected, got = history(one / csv_path, columns), history(two / csv_path, columns)
    assert len(got) == len(expected)
    assert got == pytest.approx(expected, rel=TOLERANCE[task], abs=TOLERANCE[task])
    for name in outputs:  # one set of outputs, by rank 0, and nothing half-written left behind
        assert (two / name).is_file(), name
    assert not list(two.rglob("*.tmp")) and not list(two.rglob("*.pt.tmp")) and not list((two / ".cache").rglob("*.pt"))
    assert len(mlflow_runs(two)) == 1 and mlflow_runs(two)[0][1] == "FINISHED"


def test_a_bad_batch_for_two_processes_is_one_error_line_and_no_launch(tmp_path):
    sections = tiny_sections()
    sections["common"].update(device="cpu", threads=1, nproc=2, mlflow=False)
    sections["ddpm"]["train"]["batch_size"] = 7
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run([sys.executable, "-m", "stages.ddpm.train"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: parameter 'ddpm.train.batch_size' is 7; with 2 processes it must be a multiple of 2"
    )


def test_a_data_error_in_the_ranks_is_one_error_line_and_their_status(tmp_path):
    write_params("ddpm", tmp_path, 2, mlflow=False)  # no prepared data: both ranks fail alike
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run([sys.executable, "-m", "stages.ddpm.train"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()  # rank 0's line; no launcher traceback
    assert line.startswith("error: data/ddpm/prepared") and "Traceback" not in result.stdout
    assert not (tmp_path / "models").exists()
