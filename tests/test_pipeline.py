"""The DVC pipeline itself: `dvc repro` in a temporary copy of the repo, on tiny params."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from tiny import copy_checkout, merge, write_tiny_params

ROOT = Path(__file__).resolve().parents[1]


def copy_repo(dest: Path) -> Path:
    copy_checkout(dest)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def set_params(repo: Path, updates: dict) -> None:
    params = merge(yaml.safe_load((repo / "params.yaml").read_text()), updates)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(repo: Path, *args: str, env: dict | None = None) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_is_complete_then_a_no_op_then_reruns_only_downstream(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    write_tiny_params(repo)

    first = stages_run(dvc(repo, "repro", "pokemon-package"))
    assert first == {
        "pokemon-download", "pokemon-prepare", "pokemon-classifier", "pokemon-train",
        "pokemon-predict", "pokemon-fid-reference", "pokemon-evaluate", "pokemon-package",
    }  # fmt: skip
    submission = (repo / "submissions/pokemon/submission.txt").read_text().splitlines()
    assert len(submission) == 80 and all(len(line.split()) == 400 for line in submission)

    assert stages_run(dvc(repo, "repro", "pokemon-package")) == set()

    set_params(repo, {"pokemon": {"train": {"lr": 0.01}}})
    rerun = stages_run(dvc(repo, "repro", "pokemon-package"))
    # evaluate re-runs only if the new model's completions differ; DVC skips it when they do not
    assert {"pokemon-train", "pokemon-predict", "pokemon-package"} <= rerun
    assert rerun <= {"pokemon-train", "pokemon-predict", "pokemon-evaluate", "pokemon-package"}

    check_mlflow(repo)


def check_mlflow(repo: Path) -> None:
    """Runs of experiment `pokemon` carry params, per-epoch metrics and the dep hashes that dvc.lock recorded."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pokemon")
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags["stage"] for r in runs} >= {"pokemon-classifier", "pokemon-train", "pokemon-evaluate"}
    train_run = next(r for r in runs if r.data.tags["stage"] == "pokemon-train")  # newest first
    assert train_run.data.params["train.lr"] == "0.01"
    assert [m.step for m in client.get_metric_history(train_run.info.run_id, "dev_loss")] == [1, 2]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["pokemon-train"]["deps"]
    for dep in lock:
        assert train_run.data.tags[f"dep.{dep['path']}"] == dep["md5"], dep["path"]


def test_stage_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text(
        f"common: {{mlflow: false}}\npokemon:\n  data:\n    source: dir:{tmp_path / 'missing'}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "stages.pokemon.download"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'missing'}: source folder not found"
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.txt"))

    (tmp_path / "params.yaml").write_text("common: {}\npokemon:\n  modle: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "stages.pokemon.download"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1 and "unknown parameter 'pokemon.modle'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ddpm_sampler_change_reruns_only_sampling_and_after(tmp_path):
    """The issue's ablation: `-S ddpm.sample.sampler=ddim -S ddpm.sample.steps=…` must not retrain."""
    repo = copy_repo(tmp_path / "repo")
    write_tiny_params(repo)
    set_params(repo, {"common": {"mlflow": False}})
    first = stages_run(dvc(repo, "repro", "ddpm-package"))
    assert {"ddpm-train", "ddpm-sample", "ddpm-evaluate", "ddpm-package"} <= first
    with zipfile.ZipFile(repo / "submissions/ddpm/submission.zip") as archive:
        assert sorted(archive.namelist()) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]

    set_params(repo, {"ddpm": {"sample": {"sampler": "ddim", "steps": 10}}})
    assert stages_run(dvc(repo, "repro", "ddpm-package")) == {"ddpm-sample", "ddpm-evaluate", "ddpm-package"}
