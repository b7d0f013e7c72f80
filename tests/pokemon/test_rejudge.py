"""stages.pokemon.rejudge: a recorded run's outputs read back from the DVC cache through its commit's dvc.lock."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from stages.common.io import DataError
from stages.common.record import cached
from stages.pokemon.rejudge import lock_outs, materialize


def test_materialize_copies_a_file_and_a_folder_out_of_the_cache(tmp_path: Path) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    files = {"a" * 32: b"model bytes", "b" * 32: b"1 2 3\n", "c" * 32: b"4 5 6\n"}
    listing = [{"md5": "b" * 32, "relpath": "test.txt"}, {"md5": "c" * 32, "relpath": "sub/dev.txt"}]
    for md5, data in {**files, "d" * 32 + ".dir": json.dumps(listing).encode()}.items():
        cached(tmp_path, md5).parent.mkdir(parents=True, exist_ok=True)
        cached(tmp_path, md5).write_bytes(data)
    lock = {"stages": {"train": {"outs": [{"path": "models/m.pt", "md5": "a" * 32}]},
                       "predict": {"outs": [{"path": "data/predictions", "md5": "d" * 32 + ".dir"},
                                            {"path": "data/gone.txt", "md5": "e" * 32}]}}}  # fmt: skip
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for args in (["init", "-q"], ["add", "dvc.lock"], ["commit", "-qm", "run"]):
        subprocess.run(["git", *args], cwd=tmp_path, env={**env, "PATH": "/usr/bin:/bin"}, check=True)
    out = tmp_path / "out"
    out.mkdir()
    outs = lock_outs(tmp_path, "HEAD")
    assert materialize(tmp_path, "HEAD", outs, "models/m.pt", out).read_bytes() == b"model bytes"
    folder = materialize(tmp_path, "HEAD", outs, "data/predictions", out)
    assert (folder / "test.txt").read_bytes() == b"1 2 3\n" and (folder / "sub" / "dev.txt").read_bytes() == b"4 5 6\n"
    with pytest.raises(DataError, match="has no output data/nothing"):
        materialize(tmp_path, "HEAD", outs, "data/nothing", out)
    with pytest.raises(DataError, match="data/gone.txt is not in the DVC cache"):
        materialize(tmp_path, "HEAD", outs, "data/gone.txt", out)
