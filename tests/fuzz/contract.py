"""The promise every stage and tool makes about bad input, as code the sweeps and the fuzzers share.

Bad input (a param, a user's file or folder, an output path) stops a stage with status 1 and exactly one
`error:` line, the last line on stderr, naming the user's own file or the param (never a temporary path), with
no traceback; every file that was there before (earlier outputs, the user's own files) is byte-identical after,
and nothing new is left behind. In-process, the same promise reads: `run()` raises DataError or ParamsError
(whose message names the file or param) and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Case:
    """One bad input run as a process in its own folder (the cwd, holding params.yaml and earlier outputs)."""

    id: str
    module: str  # stages.<task>.<step>
    params: dict | Callable[[Path], dict]  # params.yaml, or a function of the case folder giving it
    expect: str | tuple[str, ...] | Callable[[Path], str | tuple[str, ...]]  # substring(s) of the error line;
    # a callable gets the case folder
    make: Callable[[Path], None] | None = None  # writes the user's bad input files under the case folder
    args: tuple[str, ...] | Callable[[Path], tuple[str, ...]] = ()
    check: Callable[[Path], None] | None = None  # more assertions on the folder after the run


def task_params(task: str, section: dict, common: dict | None = None) -> dict:
    return {"common": {"mlflow": False, **(common or {})}, task: section}


def src(folder: Path) -> Path:
    """The user's own files in a case folder (a space in the path, as users have)."""
    return folder / "user files"


def task_of(module: str) -> str:
    """`stages.coco_caption.download` -> `coco-caption` (the params section and the data/ folder name)."""
    return module.split(".")[1].replace("_", "-")


def stage_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_module(module: str, args: tuple[str, ...] | list[str], cwd: Path, timeout: int = 180):
    """`python -m module args` in `cwd`: the CompletedProcess, stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def default_sigint() -> None:
    """For `preexec_fn`: the child gets SIGINT's default action, as a user's terminal gives it, even when the
    test run itself was started with SIGINT ignored (`nohup … &`), which a child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (but scratch `.cache/`): its md5, or where it links to (links are not followed)."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if ".cache" in f.relative_to(folder).parts:
            continue
        if f.is_symlink():
            out[str(f.relative_to(folder))] = f"-> {os.readlink(f)}"
        elif f.is_file():
            out[str(f.relative_to(folder))] = hashlib.md5(f.read_bytes()).hexdigest()
    return out


def earlier_outputs(folder: Path, task: str) -> None:
    """What an earlier good run left: the raw data, a model, metrics (contents do not matter, only that they stay)."""
    for name in (f"data/{task}/raw/good.txt", f"models/{task}/good.pt", f"metrics/{task}.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"an earlier good result: {name}\n")


def lay_out(case: Case, folder: Path) -> tuple[list[str], dict]:
    """Lay out the case folder (earlier outputs, the case's files, params.yaml); (args, snapshot before)."""
    earlier_outputs(folder, task_of(case.module))
    if case.make is not None:
        case.make(folder)
    if not (folder / "params.yaml").exists():
        params = case.params(folder) if callable(case.params) else json.loads(json.dumps(case.params))
        (folder / "params.yaml").write_text(yaml.safe_dump(params or {"common": {"mlflow": False}}))
    args = case.args(folder) if callable(case.args) else case.args
    return args, snapshot(folder)


def run_cases(cases: list[Case], base: Path, workers: int = 4) -> dict[str, tuple]:
    """Every case in its own folder under `base`: {id: (result, before, after, folder)}.

    The folders are laid out one after another in this process (a case's `make` may use a library, such as
    h5py, that is not safe to call from two threads at once); only the stage processes run in parallel.
    """
    folders = {case.id: base / case.id for case in cases}
    laid = {}
    for case in cases:
        folders[case.id].mkdir()
        laid[case.id] = lay_out(case, folders[case.id])

    def run(case: Case) -> tuple:
        result = run_module(case.module, laid[case.id][0], folders[case.id])
        return result, laid[case.id][1], snapshot(folders[case.id]), folders[case.id]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {case.id: pool.submit(run, case) for case in cases}
        return {cid: future.result() for cid, future in futures.items()}


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a run that must fail: status 1, no traceback, the line is stderr's last."""
    tail = result.stderr[-3000:]
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert result.returncode == 1, f"status {result.returncode}\n{tail}"
    assert "Traceback" not in result.stderr, tail
    assert len(errors) == 1 and lines[-1] == errors[0], tail
    assert ".tmp" not in errors[0], errors[0]  # never a temporary copy
    return errors[0]


def assert_case(case: Case, outcome: tuple) -> None:
    """One error line holding the case's expectation, everything there before untouched, nothing left behind."""
    result, before, after, folder = outcome
    line = error_line(result)
    expect = case.expect(folder) if callable(case.expect) else case.expect
    for part in (expect,) if isinstance(expect, str) else expect:
        assert part in line, f"expected {part!r} in {line!r}"
    assert after == before, changed(before, after)
    if case.check is not None:
        case.check(folder)


def changed(before: dict, after: dict) -> str:
    """What differs between two snapshots, for an assertion message."""
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    edited = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"removed {gone}, new {new}, changed {edited}"


# ---------------------------------------------------------------- in-process


@dataclasses.dataclass
class Outcome:
    error: Exception | None  # the DataError or ParamsError raised; None: the call returned
    stdout: str
    stderr: str


def call(fn: Callable[[], object]) -> Outcome:
    """Call `fn()` with its output captured. DataError and ParamsError are the contract's two ways to refuse: they
    come back in the Outcome. Anything else propagates, so the test fails with its traceback (a bug to fix)."""
    from stages.common.io import DataError
    from stages.common.params import ParamsError

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            fn()
        except (DataError, ParamsError) as refused:
            return Outcome(refused, out.getvalue(), err.getvalue())
    return Outcome(None, out.getvalue(), err.getvalue())


def assert_names(message: str, *names: str | Path) -> None:
    """The message of a refusal names one of `names` (the user's file or folder, or the param), and never a
    temporary path."""
    assert any(str(name) in message for name in names), f"{message!r} names none of {[str(n) for n in names]}"
    assert ".tmp" not in message, message


def fuzz_settings(examples: int):
    """Hypothesis settings of every fuzzer here: repeatable (derandomized, no example database), no deadline
    (each example may start a process), no shrinking (one change of one valid input is already minimal)."""
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
