"""MLflow facade: one experiment per task, one run per stage execution.

`metrics/*.json` written by the stages are the source of truth; MLflow is a
convenience. So every MLflow call is guarded: if the tracking store cannot be
reached (a server that is down, or stops mid-run), the stage prints one `warning:` line
and goes on without tracking.

Every run is tagged with the stage, the git commit, the hash of each dependency and, inside
`dvc exp run`, the experiment's name (`dvc_exp_name`, from DVC's `DVC_EXP_NAME`) and baseline
commit, so all the runs of one experiment are found with `tags.dvc_exp_name = '<name>'`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from stages.common.io import file_md5
from stages.common.params import flatten


class Tracker:
    """Thin wrapper over an active MLflow run; every method is a no-op once tracking is off."""

    def __init__(self, mlflow: Any = None) -> None:
        self._mlflow = mlflow
        self.run_id: str | None = None
        if mlflow is not None:
            with contextlib.suppress(Exception):
                self.run_id = mlflow.active_run().info.run_id

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._mlflow is None:
            return
        try:
            getattr(self._mlflow, method)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking must never fail a stage
            mlflow, self._mlflow = self._mlflow, None
            warn(f"MLflow {method} failed, tracking off for the rest of this run ({err})")
            if method != "end_run":  # end_run pops the run off MLflow's stack before it calls the server
                with contextlib.suppress(Exception):
                    mlflow.end_run(status="KILLED")

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._call("log_metrics", clean, step=step)

    def log_params(self, params: dict[str, Any]) -> None:
        self._call("log_params", {k: str(v)[:6000] for k, v in flatten(params).items()})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._call("set_tags", tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if Path(path).exists():
            self._call("log_artifact", str(path), artifact_path=artifact_path)


@contextlib.contextmanager
def tracked_run(
    task: str,
    stage: str,
    params: dict[str, Any],
    enabled: bool = True,
    root: str | Path = ".",
    run_id: str | None = None,
) -> Iterator[Tracker]:
    """Open an MLflow run in experiment `task`, tagged with the stage, git commit and dep hashes.

    `run_id`: continue that run (a trainer resuming from a checkpoint passes the id it saved with it,
    `tracker.run_id`), so one run holds the whole history and ends FINISHED instead of staying RUNNING.
    If that run cannot be reopened, a new one starts, tagged `resumes_run_id`.
    """
    root = Path(root)
    mlflow = _start(task, stage, root, run_id) if enabled else None
    tracker = Tracker(mlflow)
    tracker.log_params(params)
    tracker.set_tags({"stage": stage, "git_commit": git_commit(root), **_dep_tags(stage, root), **exp_tags()})
    if run_id:
        tracker.set_tags({"resumed": "true"} if tracker.run_id == run_id else {"resumes_run_id": run_id})
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    finally:
        tracker._call("end_run", status=status)


def _start(task: str, stage: str, root: Path, run_id: str | None = None) -> Any:
    # A server that is down should cost seconds, not MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    try:
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri or f"sqlite:///{(root / 'mlflow.db').resolve()}")
        if not uri:
            if mlflow.get_experiment_by_name(task) is None:
                mlflow.create_experiment(task, artifact_location=(root / "mlartifacts" / task).resolve().as_uri())
        mlflow.set_experiment(task)
        if run_id:
            try:
                mlflow.start_run(run_id=run_id)
                return mlflow
            except Exception as err:  # noqa: BLE001 - e.g. the tracking store was reset since the checkpoint
                warn(f"MLflow run {run_id} cannot be continued ({err}); starting a new one")
        mlflow.start_run(run_name=stage)
        return mlflow
    except Exception as err:  # noqa: BLE001 - tracking must never fail a stage
        warn(f"MLflow tracking unavailable ({err}); continuing without it")
        return None


# DVC sets these in the environment of every stage that `dvc exp run` runs (dvc/env.py).
EXP_ENV = {"DVC_EXP_NAME": "dvc_exp_name", "DVC_EXP_BASELINE_REV": "dvc_exp_baseline_rev"}


def exp_tags() -> dict[str, str]:
    """`dvc_exp_name` (and the baseline commit) when the stage runs inside `dvc exp run`; empty otherwise."""
    return {tag: os.environ[env] for env, tag in EXP_ENV.items() if os.environ.get(env)}


def warn(message: str) -> None:
    """One `warning:` line on stderr (an MLflow error can span lines and pages; the stage goes on)."""
    line = " ".join(str(message).split())
    print(f"warning: {line[:400]}{' ...' if len(line) > 400 else ''}", file=sys.stderr, flush=True)


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _dep_tags(stage: str, root: Path) -> dict[str, str]:
    return {f"dep.{path}": digest for path, digest in stage_dep_hashes(stage, root).items()}


def stage_dep_hashes(stage: str, root: str | Path = ".") -> dict[str, str]:
    """Hashes of the deps that `dvc.yaml` declares for `stage`, computed now the way DVC does.

    Read at run time rather than from dvc.lock, which DVC only rewrites after the
    stage finishes; the values equal what dvc.lock will record.
    """
    root = Path(root)
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.is_file():
        return {}
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    deps = stages.get(stage.partition("@")[0], {}).get("deps", [])
    hashes = {}
    for dep in deps:
        path = root / dep
        if path.is_file():
            hashes[dep] = file_md5(path)
        elif path.is_dir():
            hashes[dep] = dir_md5(path)
    return hashes


def dir_md5(path: Path) -> str:
    """DVC 3's directory hash: md5 of the sorted JSON list of {relpath, md5}, suffixed '.dir'."""
    entries = sorted(
        ({"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()} for f in path.rglob("*") if f.is_file()),
        key=lambda e: e["relpath"],
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"
