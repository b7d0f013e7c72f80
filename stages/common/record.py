"""Real-data results kept in the repo, recorded from `dvc exp run` experiments: measured/<task>_<name>.json.

    python -m stages.common.preset pokemon strong30 --run --queue -n pk-s0 -S pokemon.seed=0 pokemon-package
    dvc queue start                                    # ... one experiment per seed / thread count
    python -m stages.common.record pokemon strong30 pk-s0 pk-s1 ...

Each EXP is an experiment name (`dvc exp run -n`) or a git revision. For each, the record keeps the commit DVC made
for it and the commit it was run from, the params that differ from that commit's params.yaml and those in which the
runs differ from each other (`varied`, each run's value, defaults included), the metrics files of the task's stages
that ran in the experiment (current_stages), their detail reports (`reports/*_detail.json`: per-run and per-subset
numbers kept out of the metrics so that `dvc metrics diff` stays short) and the CSV tables its plots are drawn from
(from the experiment's commit: an FID curve, a training history) and their timings (read through the experiment's
dvc.lock from the DVC cache: seconds, threads, CPU); then, over the runs, mean, std (n - 1), min and max of every
metric that is a number and how many runs hold each one that is true or false. So a figure a README takes from the
record names the experiments, code and params that made it: `git show <commit>:dvc.lock` says the rest, and `dvc exp
apply <name>` brings an experiment back where its refs are (`dvc exp push` shares them).
Imports nothing heavy.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from stages.common.exps import lookup, task_of
from stages.common.params import flatten

MEASURED = Path("measured")  # relative to the repo root
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a task or record name: one plain file-name part


class RecordError(Exception):
    """A name that is no experiment, or an experiment without the task's results: one `error:` line."""


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RecordError(
            f"git {' '.join(args)}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}"
        )
    return proc.stdout


def resolve(root: Path, name: str) -> str:
    """The commit of experiment `name` (its ref under refs/exps/), else of the git revision `name`."""
    refs = git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/").splitlines()
    found = sorted({sha for sha, ref in (line.split(" ", 1) for line in refs) if ref.rsplit("/", 1)[-1] == name})
    if len(found) > 1:
        raise RecordError(f"{name}: names {len(found)} experiments ({', '.join(s[:7] for s in found)}); give a commit")
    if found:
        return found[0]
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}").strip()
    except RecordError:
        raise RecordError(f"{name}: no experiment or git revision of that name (dvc exp list)") from None


def run_named(name: str, args: Sequence[str], root: Path = Path(".")) -> str:
    """`dvc exp run -n <name> ARGS` in the workspace (an earlier experiment of that name removed first); returns
    the experiment's commit, so that a row made from it names the code, params and dvc.lock that made it."""
    print("+ dvc exp run -n", name, " ".join(args), flush=True)
    subprocess.run(["dvc", "exp", "remove", name], cwd=root, capture_output=True)  # absent: nothing to remove
    subprocess.run(["dvc", "exp", "run", "-n", name, *args], cwd=root, check=True)
    return resolve(root, name)


def slug(prefix: str, label: str) -> str:
    """An experiment name for a labelled variant: 'hybrid, width 64' -> '<prefix>-hybrid-width-64'."""
    return f"{prefix}-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def cached(root: Path, md5: str) -> Path:
    """Where the DVC cache of the repo at `root` keeps the file (or `.dir` listing) of that md5."""
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def show(root: Path, rev: str, path: str) -> str:
    return git(root, "show", f"{rev}:{path}")


def one_run(root: Path, task: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One experiment's record entry, and its full flattened params (record() finds what varies from them)."""
    rev = resolve(root, name)
    base = git(root, "rev-parse", f"{rev}^").strip()
    sections = yaml.safe_load(show(root, rev, "params.yaml")) or {}
    params = flatten(sections)
    before = flatten(yaml.safe_load(show(root, base, "params.yaml")) or {})
    lock = yaml.safe_load(show(root, rev, "dvc.lock")) or {}
    ran = current_stages(lock, sections)
    outs = [
        o
        for stage, entry in (lock.get("stages") or {}).items()
        if stage in ran and task_of(stage, sections) == task
        for o in entry.get("outs", [])
    ]
    metrics = {
        Path(o["path"]).stem: json.loads(show(root, rev, o["path"]))
        for o in outs
        if o["path"].startswith("metrics/") and o["path"].endswith(".json")
    }
    if not metrics:
        raise RecordError(f"{name}: its dvc.lock has no metrics of task '{task}' (was it a run of {task}'s stages?)")
    details = {
        Path(o["path"]).stem: json.loads(show(root, rev, o["path"]))
        for o in outs
        if o["path"].startswith("reports/") and o["path"].endswith("_detail.json")
    }
    tables = {}
    for o in outs:
        if o["path"].startswith("plots/") and o["path"].endswith(".csv"):
            try:
                text = show(root, rev, o["path"])
            except RecordError:  # a table kept in the DVC cache, not in git: not recorded
                continue
            tables[o["path"]] = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]
    timings = {}
    for o in outs:
        if o["path"].startswith("timings/") and "md5" in o:
            path = cached(root, o["md5"])
            timings[Path(o["path"]).stem] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    entry = {
        "experiment": name,
        "commit": rev,
        "baseline": base,
        "params": {k: v for k, v in sorted(params.items()) if before.get(k, object()) != v},
        "metrics": metrics,
        "details": details,
        "tables": tables,
        "timings": timings,
    }
    return entry, params


def current_stages(lock: dict[str, Any], sections: dict[str, Any]) -> set[str]:
    """The stages of an experiment's dvc.lock that ran in it: those locked with its params.yaml's values whose
    inputs made by other stages are those stages' locked outputs, themselves current. `dvc exp run <target>` runs
    only the target and what it needs; every other entry stays as the baseline left it, and its outputs (the
    baseline's metrics, from other params) are not this experiment's results."""
    stages = lock.get("stages") or {}
    made_by = {o["path"]: (name, o.get("md5")) for name, entry in stages.items() for o in entry.get("outs", [])}
    current = {
        name
        for name, entry in stages.items()
        if all(
            lookup(sections, key) == value
            for key, value in ((entry.get("params") or {}).get("params.yaml") or {}).items()
        )
    }
    changed = True
    while changed:  # a stage on a stale stage's output is stale too
        stale = {
            name
            for name in current
            for dep in stages[name].get("deps", [])
            if dep["path"] in made_by
            and (made_by[dep["path"]][0] not in current or made_by[dep["path"]][1] != dep.get("md5"))
        }
        current -= stale
        changed = bool(stale)
    return current


def _number(cell: str) -> Any:
    """A CSV cell as the number it spells, else the text."""
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return cell


def summarise(values: Sequence[float]) -> dict[str, float]:
    """n, mean, std (n - 1; 0 for one value), min and max of repeated runs' values (also benchmarks/spread.py's)."""
    return {
        "n": len(values),
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per metrics file, per dotted key: mean/std/min/max/n of numbers, `true`/n of booleans (keys all runs share)."""
    out: dict[str, Any] = {}
    for stem in runs[0]["metrics"]:
        flat = [flatten(r["metrics"].get(stem) or {}) for r in runs]
        keys = [k for k in flat[0] if all(k in f for f in flat)]
        rows = {}
        for key in keys:
            values = [f[key] for f in flat]
            if all(isinstance(v, bool) for v in values):
                rows[key] = {"true": sum(values), "n": len(values)}
            elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                rows[key] = summarise(values)
        out[stem] = rows
    return out


def record(root: Path, task: str, name: str, experiments: Sequence[str]) -> Path:
    for what, value in (("task", task), ("record name", name)):
        if not NAME.match(value) or ".." in value:
            raise RecordError(f"{what} {value!r}: letters, digits, '_', '.' and '-' only")
    runs, full = zip(*(one_run(root, task, e) for e in experiments), strict=True)
    keys = sorted({k for f in full for k in f})
    varied = [k for k in keys if len({json.dumps(f.get(k)) for f in full}) > 1]
    for r, f in zip(runs, full, strict=True):  # the params in which the runs differ, with each run's full value
        r["varied"] = {k: f.get(k) for k in varied}
    data = {
        "what": f"{task} `{name}`: {len(runs)} experiment(s), each a `dvc exp run` of the task's stages",
        "command": "python -m stages.common.record " + " ".join([task, name, *experiments]),
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "summary": summary(runs),
    }
    from stages.common.io import write_json

    path = root / MEASURED / f"{task}_{name}.json"
    write_json(path, data)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[0].startswith("-"):
        raise SystemExit(__doc__.split("\n\n")[1])
    try:
        print(record(Path.cwd(), args[0], args[1], args[2:]))
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
