"""MLflow facade: one experiment per task, one run per stage execution.

`metrics/*.json` written by the stages are the source of truth; MLflow is a
convenience. So every MLflow call is guarded: if the tracking store cannot be
reached (a server that is down, or stops mid-run), the stage prints one `warning:` line
and goes on without tracking.

Every run is tagged with the stage, the git commit, the hash of each dependency and, inside
`dvc exp run`, the experiment's name (`dvc_exp_name`, from DVC's `DVC_EXP_NAME`) and baseline
commit, so all the runs of one experiment are found with `tags.dvc_exp_name = '<name>'`.

Light stages (package, evaluate without a model) finish in a second, less than `import mlflow`
takes. They open their run with `background=True`: the calls are recorded in a spool folder
(`.mlflow-spool/`, artifacts copied) and a detached process replays them into MLflow after the
stage has exited, one spool at a time and oldest first, under a lock. A spool that cannot be
replayed (store unreachable) stays for the next replay. `STAGES_MLFLOW_SYNC=1` logs synchronously.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from stages.common.io import file_md5
from stages.common.params import flatten

SPOOL = ".mlflow-spool"
SYNC_ENV = "STAGES_MLFLOW_SYNC"
PROJECT = Path(__file__).resolve().parents[2]  # the folder that holds `stages/`


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


class Spool(Tracker):
    """Records a run's calls in `folder` (artifacts copied) for `replay` to log after the stage exits."""

    def __init__(self, folder: Path, task: str, stage: str) -> None:
        super().__init__(None)
        self.folder, self.task, self.stage, self.calls = folder, task, stage, []
        self.folder.mkdir(parents=True)

    @property
    def active(self) -> bool:
        return True

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if method == "log_artifact":
            src = Path(args[0])
            dest = self.folder / "artifacts" / str(len(self.calls)) / src.name
            dest.parent.mkdir(parents=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
            args = (dest.relative_to(self.folder).as_posix(),)
        self.calls.append([method, list(args), kwargs])

    def close(self, root: Path) -> None:
        """Write the record (renamed into place last: a replay never sees half of one), start the replay."""
        spec = {"task": self.task, "stage": self.stage, "ended": time.time(), "calls": self.calls}
        (self.folder / "run.json.tmp").write_text(json.dumps(spec))
        (self.folder / "run.json.tmp").rename(self.folder / "run.json")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
        with open(self.folder.parent / "replay.log", "a") as log:
            subprocess.Popen(
                [sys.executable, "-m", "stages.common.tracking", str(root.resolve())],
                cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip


def replay(root: Path) -> int:
    """Log every complete spool under `root` into MLflow, oldest first; returns how many were logged."""
    import fcntl

    spool, done = root / SPOOL, 0
    with open(spool / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one replay at a time: sqlite takes one writer
        for folder in sorted(f for f in spool.iterdir() if (f / "run.json").is_file()):
            spec = json.loads((folder / "run.json").read_text())
            mlflow = _start(spec["task"], spec["stage"], root)
            if mlflow is None:
                return done  # the store is unreachable: keep the spools for the next replay
            tracker = Tracker(mlflow)
            tracker.set_tags({"logged_from_spool": "true", "stage_ended": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(spec["ended"]))})  # fmt: skip
            for method, args, kwargs in spec["calls"]:
                if method == "log_artifact":
                    args = [str(folder / args[0])]
                tracker._call(method, *args, **kwargs)
            shutil.rmtree(folder)
            done += 1
    return done


@contextlib.contextmanager
def tracked_run(
    task: str,
    stage: str,
    params: dict[str, Any],
    enabled: bool = True,
    root: str | Path = ".",
    run_id: str | None = None,
    background: bool = False,
) -> Iterator[Tracker]:
    """Open an MLflow run in experiment `task`, tagged with the stage, git commit and dep hashes.

    `run_id`: continue that run (a trainer resuming from a checkpoint passes the id it saved with it,
    `tracker.run_id`), so one run holds the whole history and ends FINISHED instead of staying RUNNING.
    If that run cannot be reopened, a new one starts, tagged `resumes_run_id`.
    `background`: a light stage's run, logged by a detached process after the stage exits (see the top).
    """
    root = Path(root)
    if enabled and background and not os.environ.get(SYNC_ENV):
        tracker: Tracker = Spool(root / SPOOL / f"{time.time_ns()}-{stage}", task, stage)
    else:
        tracker = Tracker(_start(task, stage, root, run_id) if enabled else None)
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
        if isinstance(tracker, Spool):
            tracker.close(root)


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


if __name__ == "__main__":  # the detached replay that a light stage starts (Spool.close)
    replay(Path(sys.argv[1]))
