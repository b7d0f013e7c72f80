"""CIFAR-10's official python batches are pickles: read by a restricted unpickler that builds numpy arrays and
plain data only. A crafted batch that asks for any other callable is refused before anything runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from stages.common.io import DataError
from stages.vit import data


def write_batches(folder: Path, per_batch: int = 4, protocol: int = 2) -> Path:
    """A tiny cifar-10-batches-py: five train batches, a test batch and batches.meta, pickled as numpy does."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(k) for k in rng.integers(0, 10, per_batch)],
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [c.encode() for c in data.CIFAR_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


class RunsCode:
    """What an attacker would pickle: unpickling it calls os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_official_batches_load(tmp_path, protocol) -> None:
    folder = write_batches(tmp_path / "cifar-10-batches-py", protocol=protocol)
    loaded = data.load_dir(tmp_path)
    x, y = loaded["train"]
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (20,)
    assert loaded["test"][0].shape == (4, 32, 32, 3) and loaded["classes"] == data.CIFAR_CLASSES
    raw = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"]
    assert np.array_equal(x[0], raw[0].reshape(3, 32, 32).transpose(1, 2, 0))


@pytest.mark.parametrize("where", ["data", "top"])
def test_a_crafted_batch_runs_nothing(tmp_path, where) -> None:
    folder = write_batches(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    evil = RunsCode(f"touch {marker}")
    batch = pickle.loads((folder / "data_batch_2").read_bytes())
    payload = {**batch, b"data": evil} if where == "data" else evil
    (folder / "data_batch_2").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError) as err:
        data.load_dir(tmp_path)
    assert not marker.exists(), "unpickling ran the command"
    assert str(err.value) == f"{folder / 'data_batch_2'}: refusing to load: the pickle asks for posix.system"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a CIFAR-10 pickle (EOFError"),
        (b"\x80\x02}q\x00(X\x04\x00\x00\x00data", "not a CIFAR-10 pickle"),
        (b"not a pickle at all", "not a CIFAR-10 pickle"),
        (pickle.dumps([1, 2, 3], protocol=2), "holds a list, expected a dict"),
        (pickle.dumps({b"data": ["x"] * 3072, b"labels": [0]}, protocol=2), "'data' or 'labels' is not numbers"),
        (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2), "data is (2, 10)"),
    ],
)
def test_a_broken_batch_is_one_error_naming_it(tmp_path, content, message) -> None:
    folder = write_batches(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_3").write_bytes(content)
    with pytest.raises(DataError, match=r"^" + str(folder / "data_batch_3").replace(".", r"\.") + ": .*") as err:
        data.load_dir(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
