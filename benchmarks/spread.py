"""Run-to-run spread of a task's headline metrics at sample scale: training + evaluation over k seeds.

    python benchmarks/spread.py <task> [--seeds 0 1 2] [--threads N] [--jobs K] [--json out.json] [--no-run-cache]

Copies this checkout's working tree (git-tracked and untracked, not ignored: uncommitted code
included) to a temporary folder sharing this repo's DVC cache, and for each seed sets the task's
seed key(s) in the copy's params.yaml (MLflow off there) and runs `dvc repro <task>-evaluate`
there (`--jobs K`: K seeds at once, each in its own copy); upstream stages that did not change
come from the cache. It prints each run's headline
metrics and mean ± std (min–max) over the runs; `--json` writes them. The workspace, params.yaml
and dvc.lock of this checkout are not touched. DVC's run cache lets a seed already measured with
the same code, data and params come back without re-training (the outputs are deterministic);
`--no-run-cache` forces every run.

`--write` records the spread in measured/spreads.json (the task's entry replaced: mean, std, n, min, max and
each seed's value of every headline metric the registry marks `spread=True`, with the command, date, machine,
seeds and data source), which the reports and `python -m stages.common.exps` read. The seed keys and headline
metrics of every task are the registry `TASKS` of stages/common/headlines.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/spread.py` from anywhere: the registry is in stages.common

from stages.common.headlines import MEMBER_SEED_STRIDE, SPREADS_FILE, TASKS, Task, source_key, target  # noqa: E402
from stages.common.record import summarise  # noqa: E402


def working_tree_files(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout
    return [f for f in out.decode().split("\0") if f and (repo / f).is_file()]


def copy_checkout(repo: Path, dest: Path) -> None:
    """The working tree (no .git) in `dest`, DVC there without git, sharing this repo's cache."""
    for rel in working_tree_files(repo):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target)
    cache = subprocess.run(["dvc", "cache", "dir"], cwd=repo, check=True, capture_output=True, text=True)
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config.local").write_text(
        f"[core]\n    no_scm = true\n[cache]\n    dir = {cache.stdout.strip()}\n"
    )


def set_key(params: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    node = params
    for part in path:
        if part not in node:
            raise SystemExit(f"error: params.yaml has no key {dotted}")
        node = node[part]
    if last not in node:
        raise SystemExit(f"error: params.yaml has no key {dotted}")
    node[last] = value


def seeded_params(params: dict, task: str, spec: Task, seed: int, threads: int | None) -> dict:
    params = json.loads(json.dumps(params))  # a deep copy
    for key in spec.seed_keys:
        if "*" in key:
            head, tail = key.split(".*.")
            section = params
            for part in head.split("."):
                section = section[part]
            members = params[task].get("ensemble") or list(section)
            for name in members:
                committed = section[name].get(tail, 0)
                set_key(params, f"{head}.{name}.{tail}", committed + MEMBER_SEED_STRIDE * seed)
        else:
            set_key(params, key, seed)
    params.setdefault("common", {})["mlflow"] = False
    if threads is not None:
        params["common"]["threads"] = threads
        if "threads" in params[task]:
            params[task]["threads"] = threads
    return params


def read_metric(root: Path, file: str, dotted: str) -> float:
    value = json.loads((root / file).read_text())
    for part in dotted.split("."):
        value = value[part]
    return float(value)


def lookup(params: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(params, dict) or part not in params:
            return None
        params = params[part]
    return params


def machine() -> dict:
    """The CPU that measured (stages.common.runtime.machine: vendor, model, kernels); {} where it cannot be read."""
    try:
        from stages.common.runtime import machine as probe

        return {k: v for k, v in probe().items() if k != "threads"}
    except Exception as err:  # noqa: BLE001 - the record is still worth writing without it
        return {"error": f"{type(err).__name__}: {err}"}


def spread_record(task: str, seeds: list[int], command: str, base: dict, runs: list[dict], summary: dict) -> dict:
    """The task's entry of measured/spreads.json."""
    spec = TASKS[task]
    source = lookup(base, source_key(task))
    values = {name: {str(r["seed"]): r["metrics"][name] for r in runs} for name in summary}
    files = {h.key: h.file for h in spec.headlines}
    return {
        "scale": "sample" if source == "sample" else f"`{source}`",
        "data_source": source,
        "seeds": seeds,
        "seed_keys": list(spec.seed_keys),
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "source": "benchmarks/spread.py --write",
        "metrics": {k: {"file": files[k], **summary[k], "values": values[k]} for k in summary},
    }


def write_spread(root: Path, task: str, record: dict) -> Path:
    """Replace `task`'s entry of measured/spreads.json (the other tasks' entries are kept), atomically."""
    path = root / SPREADS_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"tasks": {}}
    data.setdefault("tasks", {})[task] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the task's seeds in the registry (0 1 2)")
    parser.add_argument("--threads", type=int, help="set common.threads (and the task's own threads) in every run")
    parser.add_argument("--json", type=Path, help="write the runs and the summary here")
    parser.add_argument("--write", action="store_true", help=f"record the spread in {SPREADS_FILE.as_posix()}")
    parser.add_argument("--no-run-cache", action="store_true", help="re-run every stage, even one seen before")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own copy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = parser.parse_args()
    spec: Task = TASKS[args.task]
    args.seeds = args.seeds or list(spec.seeds)
    if len(args.seeds) < 3:
        print("note: fewer than 3 seeds give a poor estimate of the spread", file=sys.stderr)
    stage = target(args.task)
    metrics = {h.key: h.file for h in spec.measured()}
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    tmp = Path(tempfile.mkdtemp(prefix=f"spread-{args.task}-"))
    runs = []
    try:
        print(f"spread {args.task}: seeds {args.seeds}, in {tmp}, load average {os.getloadavg()[0]:.1f}", flush=True)
        jobs = []  # (seed, copy, command, log, process, start); at most --jobs running at once
        pending = list(args.seeds)
        while pending or jobs:
            while pending and len([j for j in jobs if j[4].poll() is None]) < args.jobs:
                seed = pending.pop(0)
                copy = tmp / f"seed{seed}"
                copy_checkout(ROOT, copy)
                params = seeded_params(base, args.task, spec, seed, args.threads)
                (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
                cmd = ["dvc", "repro", stage] + (["--no-run-cache"] if args.no_run_cache else [])
                log = (tmp / f"repro-seed{seed}.log").open("w")
                proc = subprocess.Popen(cmd, cwd=copy, stdout=log, stderr=subprocess.STDOUT, text=True)
                jobs.append((seed, copy, cmd, log, proc, time.time()))
            for job in [j for j in jobs if j[4].poll() is not None]:
                seed, copy, cmd, log, proc, start = job
                jobs.remove(job)
                log.close()
                seconds = time.time() - start
                if proc.returncode != 0:
                    tail = "\n".join((tmp / f"repro-seed{seed}.log").read_text().strip().splitlines()[-15:])
                    raise SystemExit(f"error: `{' '.join(cmd)}` failed for seed {seed} (in {copy}):\n{tail}")
                values = {key: read_metric(copy, file, key) for key, file in metrics.items()}
                runs.append({"seed": seed, "metrics": values, "seconds": round(seconds, 1)})
                shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                print(f"  seed {seed}: {shown} ({seconds:.0f} s)", flush=True)
                if not args.keep:
                    shutil.rmtree(copy, ignore_errors=True)
            time.sleep(1)
    finally:
        for job in jobs:
            job[4].kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    runs.sort(key=lambda r: r["seed"])
    summary = {key: summarise([r["metrics"][key] for r in runs]) for key in metrics}
    for name, s in summary.items():
        print(
            f"{args.task} {name}: {s['mean']:.4g} ± {s['std']:.2g} (min {s['min']:.4g}, max {s['max']:.4g}, n {s['n']})"
        )
    if args.json:
        record = {
            "task": args.task,
            "target": stage,
            "seeds": args.seeds,
            "seed_keys": list(spec.seed_keys),
            "threads": args.threads,
            "runs": runs,
            "summary": summary,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.write:
        command = " ".join(["python benchmarks/spread.py", args.task, "--seeds", *map(str, args.seeds)]
                           + (["--threads", str(args.threads)] if args.threads is not None else []))  # fmt: skip
        path = write_spread(ROOT, args.task, spread_record(args.task, args.seeds, command, base, runs, summary))
        print(f"{args.task}: spread -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
