"""stages.common.record: a record of experiments read from their commits, dvc.lock and the DVC cache."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from stages.common.record import RecordError, current_stages, record, slug


def git(root: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, seed: int, fid: float, passes: bool, seconds: float) -> str:
    """One run of a toy task: params, its metrics file (git-tracked) and its timings (in the DVC cache)."""
    (root / "params.yaml").write_text(yaml.safe_dump({"toy": {"seed": seed, "lr": 0.1}, "other": {"x": 1}}))
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics" / "toy.json").write_text(json.dumps({"fid": fid, "passes": passes, "name": "a"}))
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports" / "toy_detail.json").write_text(json.dumps({"runs": [fid, fid + 1]}))
    (root / "plots").mkdir(exist_ok=True)
    (root / "plots" / "curve.csv").write_text(f"step,fid,note\n10,{fid + 5},a\n20,{fid},b\n")
    timing = json.dumps({"seconds": seconds}).encode()
    md5 = f"{seed:02d}" + "0" * 30
    cache = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(timing)
    lock = {
        "stages": {
            "toy-train": {
                "cmd": "x",
                "outs": [
                    {"path": "metrics/toy.json", "md5": "1" * 32},
                    {"path": "reports/toy_detail.json", "md5": "5" * 32},
                    {"path": "plots/curve.csv", "md5": "3" * 32},
                    {"path": "plots/cached.csv", "md5": "4" * 32},  # in the DVC cache only: not recorded
                    {"path": "timings/toy-train.json", "md5": md5},
                ],
            },
            "other-train": {"cmd": "y", "outs": [{"path": "metrics/other.json", "md5": "2" * 32}]},
        }
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    git(root, "add", "params.yaml", "metrics", "reports", "plots", "dvc.lock")
    git(root, "commit", "-qm", f"seed {seed}")
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, list[str]]:
    git(tmp_path, "init", "-q")
    base = commit(tmp_path, 0, 70.0, False, 1.0)
    runs = []
    for seed, fid, passes, seconds in ((1, 60.0, True, 10.0), (2, 64.0, True, 12.0), (3, 68.0, False, 14.0)):
        git(tmp_path, "checkout", "-q", base)
        sha = commit(tmp_path, seed, fid, passes, seconds)
        git(tmp_path, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/toy-s{seed}", sha)
        runs.append(sha)
    git(tmp_path, "checkout", "-q", base)
    return tmp_path, base, runs


def test_record_reads_each_experiment_and_summarises_them(repo):
    root, base, shas = repo
    path = record(root, "toy", "budget", ["toy-s1", "toy-s2", shas[2]])
    data = json.loads(path.read_text())
    assert path == root / "measured" / "toy_budget.json"
    assert data["command"] == f"python -m stages.common.record toy budget toy-s1 toy-s2 {shas[2]}"
    assert [r["commit"] for r in data["runs"]] == shas and {r["baseline"] for r in data["runs"]} == {base}
    assert data["runs"][0]["params"] == {"toy.seed": 1}  # only what differs from the baseline's params.yaml
    assert [r["varied"] for r in data["runs"]] == [{"toy.seed": s} for s in (1, 2, 3)]  # what differs between runs
    assert set(data["runs"][0]["metrics"]) == {"toy"}  # the task's stages only
    assert [r["details"] for r in data["runs"]] == [{"toy_detail": {"runs": [f, f + 1]}} for f in (60.0, 64.0, 68.0)]
    assert [r["timings"]["toy-train"]["seconds"] for r in data["runs"]] == [10.0, 12.0, 14.0]
    assert data["runs"][0]["tables"] == {"plots/curve.csv": [{"step": 10, "fid": 65.0, "note": "a"},
                                                            {"step": 20, "fid": 60.0, "note": "b"}]}  # fmt: skip
    fid = data["summary"]["toy"]["fid"]
    assert (fid["n"], fid["mean"], fid["std"], fid["min"], fid["max"]) == (3, 64.0, 4.0, 60.0, 68.0)
    assert data["summary"]["toy"]["passes"] == {"true": 2, "n": 3}
    assert "name" not in data["summary"]["toy"]


def test_record_names_what_it_cannot_find(repo):
    root, _, _ = repo
    with pytest.raises(RecordError, match="no-such: no experiment"):
        record(root, "toy", "budget", ["no-such"])
    with pytest.raises(RecordError, match="no metrics of task 'nada'"):
        record(root, "nada", "budget", ["toy-s1"])
    with pytest.raises(RecordError, match="record name '../x'"):
        record(root, "toy", "../x", ["toy-s1"])
    assert not (root / "measured").exists()


def test_slug_makes_an_experiment_name_of_a_label():
    assert slug("tl-abl", "hybrid, patch 2 (4× tokens)") == "tl-abl-hybrid-patch-2-4-tokens"
    assert slug("dd-abl", "t0 = 12") == "dd-abl-t0-12"


def test_only_the_stages_that_ran_in_an_experiment_are_recorded():
    """`dvc exp run <target>` leaves every other stage's lock entry as the baseline made it: a stage locked with
    other params, or on another output of a stage than the locked one, or downstream of such a stage, did not run."""
    sections = {"toy": {"seed": 1, "train": {"epochs": 30}}, "other": {"x": 1}}
    lock = {"stages": {
        "prepare": {"params": {"params.yaml": {"other.x": 1}}, "outs": [{"path": "data/p", "md5": "a.dir"}]},
        "train@a": {"params": {"params.yaml": {"toy.seed": 1, "toy.train": {"epochs": 30}}},
                    "deps": [{"path": "data/p", "md5": "a.dir"}, {"path": "code.py", "md5": "c"}],
                    "outs": [{"path": "models/a.pt", "md5": "m1"}]},
        "train@b": {"params": {"params.yaml": {"toy.seed": 1, "toy.train": {"epochs": 4}}},  # the baseline's
                    "deps": [{"path": "data/p", "md5": "a.dir"}], "outs": [{"path": "models/b.pt", "md5": "m2"}]},
        "evaluate": {"params": {"params.yaml": {"toy.seed": 1}},
                     "deps": [{"path": "models/a.pt", "md5": "m0"}], "outs": [{"path": "metrics/e.json", "md5": "e"}]},
        "report": {"deps": [{"path": "models/b.pt", "md5": "m2"}], "outs": [{"path": "metrics/r.json", "md5": "r"}]},
        "gone": {"params": {"params.yaml": {"toy.removed": 3}}},
    }}  # fmt: skip
    assert current_stages(lock, sections) == {"prepare", "train@a"}
    assert current_stages({}, sections) == set()
