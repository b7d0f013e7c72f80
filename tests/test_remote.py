"""Results travel through a DVC remote and its run cache: a clone that never trained restores instead of re-running.

Clone A (of a bare git repo holding this checkout's working tree on tiny params) runs the cheap vit chain
(download → prepare → train) once and pushes with `python -m stages.common.runcache push`
(`dvc push --run-cache` plus the `cache: false` outs DVC 3 leaves out). A fresh clone B of the same commit,
with its own empty DVC cache and no dvc.lock for these params, runs `dvc repro --pull`: every stage is
restored from the run cache ("is cached - skipping run"), none runs, `dvc status` is clean and the outputs
equal A's byte for byte. Once against a local-folder remote, once against a real S3 API (moto's server on
127.0.0.1 and dvc-s3), where an experiment run in A and pushed with `dvc exp push` is restored in B by
`dvc exp pull` + `dvc exp apply` without training.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny import copy_checkout, keep_stages, merge, write_tiny_params

ROOT = Path(__file__).resolve().parents[1]
TARGET = "vit-train"
CHAIN = {"vit-download", "vit-prepare", "vit-train"}
# every output of the chain, cached (data, model, timings) and `cache: false` (metrics, plots)
OUTPUTS = [
    "data/vit/raw",
    "data/vit/prepared",
    "models/vit/model.pt",
    "metrics/vit_train.json",
    "plots/vit/train_history.csv",
    "plots/vit/acc_out.png",
    "plots/vit/loss_out.png",
    "timings/vit-train.json",
]


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 300, check: bool = True) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    for name in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_ROOT", "DVC_STAGE"):
        env.pop(name, None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, f"{' '.join(cmd)}\n{output[-4000:]}"
    return output


def dvc(repo: Path, *args: str, env: dict | None = None) -> str:
    return run([sys.executable, "-m", "dvc", *args], repo, env)


def git(repo: Path, *args: str) -> str:
    return run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], repo)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def stages_restored(output: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run", output))


def digest(path: Path) -> str:
    """md5 of a file, or of a folder's (relative path, bytes) pairs."""
    h = hashlib.md5()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        h.update(f.read_bytes())
    return h.hexdigest()


def digests(repo: Path) -> dict[str, str]:
    return {out: digest(repo / out) for out in OUTPUTS}


def make_origin(dest: Path) -> Path:
    """A bare git repo whose one commit is this checkout's working tree on tiny params, its dvc.yaml cut to
    the chain (so `dvc status` and `dvc exp apply`, which look at every stage, see only these) and no dvc.lock."""
    src = copy_checkout(dest / "src")
    write_tiny_params(src)
    keep_stages(src, CHAIN)
    params = merge(yaml.safe_load((src / "params.yaml").read_text()), {"common": {"mlflow": False}})
    (src / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "tiny")
    run(["git", "clone", "-q", "--bare", str(src), str(dest / "origin.git")], dest)
    return dest / "origin.git"


def clone(bare: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(bare), str(dest)], bare.parent)
    assert not (dest / ".dvc" / "config.local").exists()  # its own, empty cache in dest/.dvc/cache
    return dest


@pytest.fixture(scope="module")
def clone_a(tmp_path_factory):
    """Clone A after `dvc repro vit-train`: (bare origin, clone A, digests of A's outputs)."""
    base = tmp_path_factory.mktemp("remote")
    bare = make_origin(base)
    a = clone(bare, base / "A")
    assert stages_run(dvc(a, "repro", TARGET)) == CHAIN
    return bare, a, digests(a)


def restore_in_fresh_clone(bare: Path, dest: Path, remote_args: list[list[str]], env: dict | None = None) -> Path:
    """Clone B: `dvc repro --pull` must restore every stage of the chain and run none."""
    b = clone(bare, dest)
    for args in remote_args:
        dvc(b, "remote", *args, env=env)
    out = dvc(b, "repro", "--pull", TARGET, env=env)
    assert stages_run(out) == set(), out[-3000:]
    assert stages_restored(out) == CHAIN, out[-3000:]
    assert "up to date" in dvc(b, "status", env=env)
    return b


def test_local_folder_remote_restores_every_stage_without_running_it(clone_a, tmp_path):
    bare, a, a_outputs = clone_a
    store = tmp_path / "dvc-store"
    dvc(a, "remote", "add", "--local", "shared", str(store))
    pushed = run([sys.executable, "-m", "stages.common.runcache", "push", "-r", "shared"], a)
    assert "run_records 3" in pushed, pushed
    assert "missing_on_remote 0" in run([sys.executable, "-m", "stages.common.runcache", "status", "-r", "shared"], a)
    assert (store / "runs").is_dir()

    b = restore_in_fresh_clone(bare, tmp_path / "B", [["add", "-d", "--local", "shared", str(store)]])
    assert digests(b) == a_outputs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture
def s3_server(tmp_path):
    """moto's S3 API on a free local port with one bucket; yields (endpoint url, env with fake credentials)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -r requirements.txt)")
    pytest.importorskip("dvc_s3", reason="dvc-s3 is not installed (pip install -r requirements.txt)")
    import boto3

    port = free_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    try:
        wait_for_port(port, proc, timeout=60)
        url = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="course-results")
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_s3_remote_restores_stages_and_an_experiment_without_training(clone_a, s3_server, tmp_path):
    bare, a, a_outputs = clone_a
    url, env = s3_server
    s3 = [["add", "-d", "--local", "s3", "s3://course-results/dvc"], ["modify", "--local", "s3", "endpointurl", url]]
    for args in s3:
        dvc(a, "remote", *args, env=env)
    pushed = run([sys.executable, "-m", "stages.common.runcache", "push"], a, env)
    assert re.search(r"run_records [3-9]", pushed), pushed

    b = restore_in_fresh_clone(bare, tmp_path / "B", s3, env)
    assert digests(b) == a_outputs

    # an experiment: trained in A, pushed (git ref to origin, data to S3), restored in B without training
    out = dvc(a, "exp", "run", "-n", "tiny-lr", "-S", "vit.train.lr=0.01", TARGET, env=env)
    assert stages_run(out) == {"vit-train"}
    a_exp = digests(a)
    assert a_exp["models/vit/model.pt"] != a_outputs["models/vit/model.pt"]
    dvc(a, "exp", "push", "origin", "tiny-lr", env=env)

    out = dvc(b, "exp", "pull", "origin", "tiny-lr", env=env)
    assert "tiny-lr" in dvc(b, "exp", "show", "--json", env=env)
    out += dvc(b, "exp", "apply", "tiny-lr", env=env)
    assert stages_run(out) == set()
    assert yaml.safe_load((b / "params.yaml").read_text())["vit"]["train"]["lr"] == 0.01
    assert "up to date" in dvc(b, "status", env=env)
    assert digests(b) == a_exp


def test_runcache_push_without_a_remote_is_one_error_line(tmp_path):
    run([sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "stages.common.runcache", "push"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "remote" in line and "Traceback" not in result.stderr
