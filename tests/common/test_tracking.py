import socket
import time

import pytest

from stages.common.tracking import dir_md5, stage_dep_hashes, tracked_run


def test_run_logs_params_metrics_and_tags(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages:\n  t-train:\n    deps:\n      - in.txt\n      - folder\n")
    (tmp_path / "in.txt").write_text("data")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    with tracked_run("t", "t-train", {"train": {"lr": 0.1}}, root=tmp_path) as tracker:
        assert tracker.active
        for epoch in range(3):
            tracker.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.data.params == {"train.lr": "0.1"}
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5, 1 / 3]
    assert run.data.tags["stage"] == "t-train"
    assert run.data.tags["dep.in.txt"] == "8d777f385d3dfec8815d20f7496026dc"
    assert run.data.tags["dep.folder"].endswith(".dir")
    assert run.info.status == "FINISHED"


def test_unreachable_server_warns_once_and_never_fails(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    start = time.time()
    with tracked_run("t", "t-train", {"a": 1}, root=tmp_path) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
        assert not tracker.active
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: MLflow tracking unavailable")
    assert time.time() - start < 60


def test_exp_run_environment_becomes_tags(monkeypatch):
    from stages.common.tracking import exp_tags

    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert exp_tags() == {}
    monkeypatch.setenv("DVC_EXP_NAME", "lr-sweep")
    assert exp_tags() == {"dvc_exp_name": "lr-sweep"}


def test_disabled_tracking_is_a_no_op(tmp_path):
    with tracked_run("t", "s", {"a": 1}, enabled=False, root=tmp_path) as tracker:
        tracker.log_metrics({"loss": 1.0})
        assert not tracker.active
    assert not (tmp_path / "mlflow.db").exists()


def test_failed_stage_marks_the_run_failed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError), tracked_run("t", "s", {}, root=tmp_path):
        raise ValueError("boom")
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.status == "FAILED"


def test_dep_hashes_of_unknown_stage_are_empty(tmp_path):
    assert stage_dep_hashes("nope", tmp_path) == {}
    (tmp_path / "d").mkdir()
    assert dir_md5(tmp_path / "d") == "d751713988987e9331980363e24189ce.dir"  # DVC's hash of an empty folder


def test_a_resumed_run_continues_the_killed_one(tmp_path, monkeypatch):
    """A trainer killed mid-run left its MLflow run RUNNING; resuming with its id continues and finishes it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow

    cm = tracked_run("t", "t-train", {"lr": 0.1}, root=tmp_path)
    tracker = cm.__enter__()  # "killed": never exited
    tracker.log_metrics({"loss": 1.0}, step=1)
    first = tracker.run_id
    mlflow.end_run(status="RUNNING")  # what a SIGKILL leaves in the store
    with tracked_run("t", "t-train", {"lr": 0.1}, root=tmp_path, run_id=first) as again:
        assert again.run_id == first
        again.log_metrics({"loss": 0.5}, step=2)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.run_id == first and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(first, "loss")] == [(1, 1.0), (2, 0.5)]
    assert run.data.tags["resumed"] == "true"


def test_resuming_an_unknown_run_starts_a_new_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with tracked_run("t", "t-train", {}, root=tmp_path, run_id="0" * 32) as tracker:
        assert tracker.active and tracker.run_id != "0" * 32


def test_light_stage_run_is_logged_after_it_exits(tmp_path, monkeypatch):
    """background=True records the calls and a detached process logs them; the artifact is a copy."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("STAGES_MLFLOW_SYNC")
    (tmp_path / "report.md").write_text("first")
    start = time.time()
    with tracked_run("t", "t-package", {"sample": {"n": 3}}, root=tmp_path, background=True) as tracker:
        assert tracker.active
        tracker.log_metrics({"bleu": 0.5})
        tracker.log_artifact(tmp_path / "report.md")
    assert time.time() - start < 5  # no `import mlflow` in the stage
    (tmp_path / "report.md").write_text("changed after the stage")  # the spool holds the stage's bytes
    spool = tmp_path / ".mlflow-spool"
    deadline = time.time() + 90
    while any(spool.glob("*/run.json")) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(spool.glob("*/run.json")), (spool / "replay.log").read_text()

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.data.params == {"sample.n": "3"} and run.data.metrics == {"bleu": 0.5}
    assert run.data.tags["stage"] == "t-package" and run.data.tags["logged_from_spool"] == "true"
    assert run.info.status == "FINISHED"
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report.md",
                                                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")  # fmt: skip
    assert open(local).read() == "first"


def test_spool_stays_when_the_store_is_unreachable(tmp_path, monkeypatch):
    from stages.common.tracking import replay

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr("stages.common.tracking.Spool.close", lambda self, root: _write_only(self))  # no replay
    monkeypatch.delenv("STAGES_MLFLOW_SYNC")
    with tracked_run("t", "t-package", {}, root=tmp_path, background=True) as tracker:
        tracker.log_metrics({"x": 1.0})
    assert replay(tmp_path) == 0
    assert len(list((tmp_path / ".mlflow-spool").glob("*/run.json"))) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_only(spool) -> None:
    import json

    (spool.folder / "run.json").write_text(json.dumps({"task": spool.task, "stage": spool.stage, "ended": 0.0,
                                                        "calls": spool.calls}))  # fmt: skip
