"""MLflow against a real tracking server: `mlflow server` (sqlite + an artifact folder in tmp_path, a free port).

Default suite (one server for the module, about a minute on a loaded 2-core machine, most of it the server's start):
- runs logged through `stages.common.tracking` arrive with their params, per-epoch metric history, artifacts,
  dep-hash tags and, with DVC's `DVC_EXP_NAME` set as `dvc exp run` sets it, the tag `dvc_exp_name` that finds
  every run of the experiment;
- the server killed mid-run: one `warning:` line, tracking goes quiet, nothing left on MLflow's run stack.
Slow (`-m slow`): the same through a real `dvc exp run -n srv-exp vit-train` (tags equal to dvc.lock's hashes),
and a real vit-train subprocess whose server is killed after epoch 3: exit 0, outputs written, one warning line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from tiny import copy_checkout, keep_stages, merge, write_tiny_params

ROOT = Path(__file__).resolve().parents[1]
CHAIN = ("vit-download", "vit-prepare", "vit-train")


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> str:
    env = {**clean_env(), **(env or {})}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{(result.stdout + result.stderr)[-4000:]}"
    return result.stdout + result.stderr


def clean_env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_ROOT", "DVC_STAGE"):
        env.pop(name, None)
    return {**env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def set_params(repo: Path, updates: dict) -> None:
    params = merge(yaml.safe_load((repo / "params.yaml").read_text()), updates)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


class Server:
    def __init__(self, tmp_path: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp_path / "mlflow-server.log").open("w")
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination", str(tmp_path / "mlartifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        # its own process group: the server's workers die with it
        self.proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"mlflow server exited: {Path(self.log.name).read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"mlflow server not ready after {timeout} s: {Path(self.log.name).read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):  # workers left behind by a server killed before it reaped them
            os.killpg(self.proc.pid, signal.SIGKILL)
        if not self.log.closed:
            self.log.close()


def prepare_repo(repo: Path) -> None:
    """A git repo of this checkout on tiny params, dvc.yaml cut to the vit chain, vit data prepared and committed."""
    copy_checkout(repo)
    write_tiny_params(repo)
    keep_stages(repo, set(CHAIN))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run([*git, "init", "-q", "-b", "main"], repo)
    run([sys.executable, "-m", "dvc", "repro", "vit-prepare"], repo)
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-q", "-m", "tiny vit, data prepared"], repo)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One mlflow server for the module (starting one costs tens of seconds on a loaded machine)."""
    srv = Server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("tracking") / "repo"
    prepare_repo(repo)
    return repo


def copy_of(repo: Path, dest: Path) -> Path:
    shutil.copytree(repo, dest, symlinks=True)
    return dest


def stage_env(server: Server, **extra: str) -> dict[str, str]:
    return {**clean_env(), "MLFLOW_TRACKING_URI": server.url, "PYTHONUNBUFFERED": "1", **extra}


def check_train_run(client, mlrun, repo: Path, lr: str) -> None:
    """The vit-train run: finished, its params, per-epoch history, artifacts and dep hashes (as DVC computes them)."""
    from stages.common.tracking import stage_dep_hashes

    tags, params, run_id = mlrun.data.tags, mlrun.data.params, mlrun.info.run_id
    assert mlrun.info.status == "FINISHED" and tags["stage"] == "vit-train"
    assert params["train.lr"] == lr and params["train.epochs"] == "2" and params["model.dim"] == "16"
    history = client.get_metric_history(run_id, "test_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert {"final_test_accuracy", "train_loss", "train_seconds"} <= set(mlrun.data.metrics)
    assert {a.path for a in client.list_artifacts(run_id)} == {"acc_out.png", "loss_out.png"}
    local = client.download_artifacts(run_id, "loss_out.png", str(repo.parent))
    assert Path(local).read_bytes() == (repo / "plots/vit/loss_out.png").read_bytes()
    deps = {k[4:]: v for k, v in tags.items() if k.startswith("dep.")}
    assert deps == stage_dep_hashes("vit-train", repo) and "data/vit/prepared" in deps


def test_runs_reach_the_server_with_params_history_artifacts_and_tags(server, tmp_path, monkeypatch):
    """In-process, as a stage inside `dvc exp run` logs (DVC_EXP_NAME set): what arrives at the server."""
    import mlflow

    from stages.common.tracking import tracked_run

    (tmp_path / "dvc.yaml").write_text("stages:\n  t-train:\n    deps:\n      - in.txt\n      - data\n")
    (tmp_path / "in.txt").write_text("data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "loss.png").write_bytes(b"\x89PNG not really")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("DVC_EXP_NAME", "fast-exp")
    for stage in ("t-train", "t-evaluate"):
        with tracked_run("t", stage, {"train": {"lr": 0.1, "epochs": 3}}, root=tmp_path) as tracker:
            assert tracker.active
            for epoch in range(1, 4):
                tracker.log_metrics({"loss": 1.0 / epoch}, step=epoch)
            tracker.log_artifact(tmp_path / "loss.png")

    client = mlflow.MlflowClient(server.url)
    experiment = client.get_experiment_by_name("t")
    runs = client.search_runs([experiment.experiment_id], "tags.dvc_exp_name = 'fast-exp'")
    assert {r.data.tags["stage"] for r in runs} == {"t-train", "t-evaluate"}  # every run of the experiment
    train = next(r for r in runs if r.data.tags["stage"] == "t-train")
    assert train.info.status == "FINISHED"
    assert train.data.params == {"train.lr": "0.1", "train.epochs": "3"}
    history = client.get_metric_history(train.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert train.data.tags["dep.in.txt"] == "8d777f385d3dfec8815d20f7496026dc"  # md5 of "data", as dvc.lock has it
    assert train.data.tags["dep.data"].endswith(".dir")
    assert [a.path for a in client.list_artifacts(train.info.run_id)] == ["loss.png"]
    local = client.download_artifacts(train.info.run_id, "loss.png", str(tmp_path / "back"))
    assert Path(local).read_bytes() == (tmp_path / "loss.png").read_bytes()


@pytest.mark.slow
def test_exp_run_logs_run_params_history_artifacts_and_tags_to_the_server(server, prepared, tmp_path):
    """`dvc exp run -n srv-exp`: DVC sets DVC_EXP_NAME for the stage, which tags its run `dvc_exp_name`."""
    import mlflow

    repo = copy_of(prepared, tmp_path / "repo")
    out = run(
        [sys.executable, "-m", "dvc", "exp", "run", "-n", "srv-exp", "-S", "vit.train.lr=0.003", "vit-train"],
        repo,
        stage_env(server),
    )
    assert "Running stage 'vit-train'" in out and "warning:" not in out, out[-3000:]
    client = mlflow.MlflowClient(server.url)
    experiment = client.get_experiment_by_name("vit")
    (train_run,) = client.search_runs([experiment.experiment_id], "tags.dvc_exp_name = 'srv-exp'")
    assert len(train_run.data.tags["dvc_exp_baseline_rev"]) == 40
    check_train_run(client, train_run, repo, lr="0.003")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["vit-train"]["deps"]
    assert {d["path"]: d["md5"] for d in lock} == {
        k[4:]: v for k, v in train_run.data.tags.items() if k.startswith("dep.")
    }


@pytest.mark.slow
def test_server_killed_mid_run_leaves_the_stage_successful_with_one_warning(prepared, tmp_path):
    """A real trainer (vit-train, 100 epochs) and a server of its own, killed after epoch 3 was logged."""
    server = Server(tmp_path)
    try:
        server.wait_ready()
        trainer_killed_mid_run(server, prepared, tmp_path)
    finally:
        server.stop()


def trainer_killed_mid_run(server: Server, prepared: Path, tmp_path: Path) -> None:
    repo = copy_of(prepared, tmp_path / "repo")
    set_params(repo, {"vit": {"train": {"epochs": 100}}})
    trainer = subprocess.Popen([sys.executable, "-m", "stages.vit.train"], cwd=repo, env=stage_env(server),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        seen = []
        for line in trainer.stdout:  # an epoch line is printed after that epoch was logged to the server
            seen.append(line)
            if line.startswith("epoch 3 "):
                break
        assert seen and seen[-1].startswith("epoch 3 "), "".join(seen)[-3000:]
        server.stop(signal.SIGKILL)  # the server dies with 97 epochs still to log
        rest, stderr = trainer.communicate(timeout=300)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.returncode == 0, stderr[-3000:]
    assert "epoch 100 " in rest
    assert yaml.safe_load((repo / "metrics/vit_train.json").read_text())["epochs"] == 100
    # MLflow's own INFO lines (creating the experiment) aside, stderr is the one warning
    lines = [line for line in stderr.splitlines() if line.strip() and " INFO mlflow" not in line]
    assert len(lines) == 1 and lines[0].startswith("warning: MLflow log_metrics failed"), stderr[-3000:]


def test_server_dying_mid_run_costs_one_warning_line_and_tracking_goes_quiet(server, tmp_path, monkeypatch, capsys):
    """Kills the module's server: keep this test last in the file."""
    import mlflow

    from stages.common.tracking import tracked_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    with tracked_run("t", "t-train", {"lr": 0.1}, root=tmp_path) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=1)
        run_id = tracker.run_id
        server.stop(signal.SIGKILL)
        for epoch in range(2, 6):  # the stage goes on: one warning, then nothing
            tracker.log_metrics({"loss": 1.0 / epoch}, step=epoch)
        tracker.log_artifact(__file__)
        assert not tracker.active
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert line.startswith("warning: MLflow log_metrics failed, tracking off for the rest of this run")
    assert mlflow.active_run() is None and run_id  # nothing left on MLflow's stack for a later run
