import pytest

from stages.common.io import atomic_path, read_json, write_json


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "out" / "file.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("one")
        assert not target.exists()
    assert target.read_text() == "one"
    with atomic_path(target) as tmp:
        tmp.write_text("two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "folder"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_json_round_trip(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]})
    assert read_json(tmp_path / "m.json") == {"a": [1.5], "b": 1}


def test_read_text_names_the_file_and_line_of_bytes_that_are_not_utf8(tmp_path):
    from stages.common.io import DataError, read_text

    path = tmp_path / "notes.txt"
    path.write_bytes(b"fine\nstill fine\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"notes.txt:3: not UTF-8 text \(byte 0xe9\)"):
        read_text(path)
    with pytest.raises(DataError, match=r"^the user's notes.txt:3:"):
        read_text(path, name="the user's notes.txt")  # a copy's error names the original
    with pytest.raises(DataError, match="file not found"):
        read_text(tmp_path / "missing.txt")
    assert read_text(path, "latin-1").endswith("café\n")


def test_atomic_path_removes_what_a_killed_writer_left_but_not_a_live_ones(tmp_path):
    import os
    import subprocess
    import sys

    from stages.common.io import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    killed = tmp_path / f".raw.{dead_pid}.abcd1234.tmp"
    legacy = tmp_path / ".raw.k1ll3d00.tmp"  # named before the pid was part of the name
    live = tmp_path / f".raw.{os.getppid()}.live1234.tmp"  # a writer still running
    other = tmp_path / ".raw.pt.12345.abcd1234.tmp"  # a sibling output's, `raw.pt`
    for folder in (killed, legacy, live, other):
        folder.mkdir()
    assert sorted(remove_stale_temporaries(tmp_path / "raw")) == sorted([killed, legacy])
    with atomic_path(tmp_path / "raw") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["raw", live.name, other.name])
