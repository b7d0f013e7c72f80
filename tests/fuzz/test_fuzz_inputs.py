"""Bad input files derived from a valid one, for every input format of every task (Hypothesis).

Each example copies a valid `dir:` source (formats.py), changes one file (mutations.py: byte flips, truncation,
other encodings, BOM, CRLF, columns, NaN and huge numbers, path tricks, links, odd image modes, bad HDF5,
parquet and pickle content) and runs the task's download stage on it, beside an earlier good run's outputs.
The contract: either success with the output written, or a DataError/ParamsError naming the user's file
(one `error:` line as a process) and nothing changed; never another exception; the user's files, the earlier
outputs and the folder beside the source (which path tricks point into) are never touched; a pickle never runs.

Most examples run in-process (fast); `test_bad_file_as_a_process` checks the same contract through the CLI on a
few. Examples are derandomized, so a run is repeatable; the `slow` variants try many more.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from fuzz.contract import assert_names, earlier_outputs, error_line, fuzz_settings, run_module, snapshot
from fuzz.formats import FORMATS, Format, build_valid, download_params, run_download
from fuzz.mutations import (
    ESCAPES,
    IMAGE_SUFFIXES,
    MARKER,
    SECRET,
    TEXT_SUFFIXES,
    Mutation,
    crlf,
    escape,
    link_in,
    link_out,
    listed_lines,
    mutation,
    outside_folder,
    source_files,
    utf8,
)

CACHE = Path(tempfile.mkdtemp(prefix="fuzz-valid-"))  # each format's valid source, built once per session
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)
IDS = [f.name for f in FORMATS]


class Layout:
    """A case folder (`root`: cwd, params, earlier outputs) holding the user's `source`, with `outside` beside it."""

    def __init__(self, base: Path, fmt: Format) -> None:
        self.fmt = fmt
        self.root, self.outside = base / "case", base / "outside"
        self.source = self.root / "user files"
        build_valid(fmt, self.source, CACHE)
        outside_folder(self.outside)
        earlier_outputs(self.root, fmt.task)
        download_params(fmt, self.root, self.source)

    def mutate(self, change: Mutation) -> None:
        change.apply(self.source, self.outside)
        self.before, self.outside_before = snapshot(self.root), snapshot(self.outside)

    @property
    def raw(self) -> Path:
        return self.root / "data" / self.fmt.task / "raw"

    def check(self, refused: str | None, change: Mutation) -> None:
        """The contract after the stage ran; `refused` is the error message, None when it succeeded."""
        after = snapshot(self.root)
        assert not (self.outside / MARKER).exists(), "a user's file ran code"
        assert snapshot(self.outside) == self.outside_before, "a file outside the case folder changed"
        user = {k: v for k, v in self.before.items() if k.startswith("user files")}
        assert {k: v for k, v in after.items() if k.startswith("user files")} == user, "the user's files changed"
        secret = (self.outside / SECRET).read_bytes()
        written = [f for f in (self.root / "data").rglob("*") if f.is_file() and not f.is_symlink()]
        assert not any(secret in f.read_bytes() for f in written), "a file from outside the source was copied in"
        if refused is not None:
            assert not change.must_accept, f"a valid input was refused: {refused}"
            assert_names(refused, self.source)
            assert after == self.before, "a refused input changed the case folder"
        else:
            assert not change.must_refuse, "accepted an input that leaves the source or runs code"
            assert self.raw.is_dir() and not (self.raw / "good.txt").exists(), "success, but no new output"
            earlier = {k: v for k, v in self.before.items() if k.startswith(("models", "metrics"))}
            assert {k: v for k, v in after.items() if k.startswith(("models", "metrics"))} == earlier


def check_drawn(fmt: Format, data: st.DataObject, as_process: bool = False) -> None:
    """One drawn change of one file of `fmt`'s valid source, the download stage run on it (in-process, or
    as the user runs it), and the contract checked."""
    with tempfile.TemporaryDirectory() as tmp:
        case = Layout(Path(tmp), fmt)
        change = data.draw(mutation(case.source))
        note(change.what)
        case.mutate(change)
        if as_process:
            result = run_module(f"stages.{fmt.package}.download", (), case.root)
            case.check(None if result.returncode == 0 else error_line(result), change)
        else:
            outcome = run_download(fmt, case.root)
            case.check(None if outcome.error is None else str(outcome.error), change)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_valid_source_is_accepted(fmt: Format, tmp_path: Path) -> None:
    """The starting point of every example: the unchanged source downloads."""
    case = Layout(tmp_path, fmt)
    case.before, case.outside_before = snapshot(case.root), snapshot(case.outside)
    outcome = run_download(fmt, case.root)
    assert outcome.error is None, outcome.error
    case.check(None, Mutation("none", lambda source, outside: None))


def policy_mutations(source: Path) -> list[Mutation]:
    """What every loader must do alike: a file linked out of the source is refused and one linked to a sibling
    inside it is read; a text file with CRLF line ends is read; a listed image named out of the source (by
    `..`, an absolute path or a link) is refused. Every file but images, and one image of each kind."""
    changes, kinds = [], set()
    for rel in source_files(source):
        suffix = Path(rel).suffix.lower()
        if suffix in IMAGE_SUFFIXES and suffix in kinds:
            continue
        kinds.add(suffix)
        changes += [link_out(rel), link_in(rel)]
        if suffix in TEXT_SUFFIXES:
            changes.append(crlf(rel))
        if suffix in (".txt", ".csv") and utf8(source / rel):
            changes += [escape(rel, i, how) for i in listed_lines(source / rel)[:1] for how in ESCAPES]
    return changes


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_links_line_ends_and_listed_paths_follow_one_policy(fmt: Format, tmp_path: Path) -> None:
    failed = []
    for i, change in enumerate(policy_mutations(Layout(tmp_path / "files", fmt).source)):
        case = Layout(tmp_path / str(i), fmt)
        case.mutate(change)
        outcome = run_download(fmt, case.root)
        try:
            case.check(None if outcome.error is None else str(outcome.error), change)
        except AssertionError as err:
            failed.append(f"{change.what}: {str(err).splitlines()[0]}")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@fuzz_settings(25)
@given(data=st.data())
def test_bad_file_in_process(fmt: Format, data: st.DataObject) -> None:
    check_drawn(fmt, data)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@fuzz_settings(2)
@given(data=st.data())
def test_bad_file_as_a_process(fmt: Format, data: st.DataObject) -> None:
    check_drawn(fmt, data, as_process=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@fuzz_settings(300)
@given(data=st.data())
def test_bad_file_in_process_many(fmt: Format, data: st.DataObject) -> None:
    check_drawn(fmt, data)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@fuzz_settings(25)
@given(data=st.data())
def test_bad_file_as_a_process_many(fmt: Format, data: st.DataObject) -> None:
    check_drawn(fmt, data, as_process=True)
