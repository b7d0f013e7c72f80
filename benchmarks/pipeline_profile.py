"""Where the sample pipeline's time goes: every stage's wall time, CPU time and peak memory, and how
close the training stages come to this CPU's peak fp32 rate.

    python benchmarks/pipeline_profile.py run [--keep DIR] [--jobs N]   # `dvc repro` from nothing, then the table
    python benchmarks/pipeline_profile.py run --here                    # `dvc repro --force` in this checkout
    python benchmarks/pipeline_profile.py show [DIR]                    # the table of an earlier run
    python benchmarks/pipeline_profile.py flops [TASK ...]              # achieved FLOP/s of the training steps

`run` copies this checkout's working tree (uncommitted code included) to a temporary folder with an
empty DVC cache, so nothing comes back from a cache or the run cache, and runs `dvc repro` there as a
user would (MLflow on) with `STAGES_PROFILE` set: each stage's `stages.common.cli.main` then records
its wall time since the process started (imports included), CPU seconds (user + system, its children
too) and peak RSS. The records are kept in `.profile/<date-time>/` (`--keep` elsewhere) with the total
wall time of `dvc repro`, which also holds DVC's own work between stages. `--here` runs
`dvc repro --force` in this checkout instead (every stage re-runs, the run cache is skipped; the
outputs and dvc.lock are this checkout's, as after a plain `dvc repro`). The table is sorted by wall
time, with each task's total, and flags the budget of the issue that asked for it: the whole pipeline
in 15 minutes and no task over 3.

`flops` builds each training stage's model and one batch at the sample-scale defaults of params.yaml,
counts the FLOPs of a forward + backward pass with `torch.utils.flop_counter`, times a few optimizer
steps, and prints FLOP/s against the peak fp32 rate of the cores it uses: threads (the stage's own
`<task>.threads`, else `common.threads`) × FLOPs per cycle per core × clock. The stages pin torch to AVX2 (stages/__init__.py): two 256-bit FMA units per core, 2 × 8 × 2 =
32 fp32 FLOPs per cycle. The clock is the one /proc/cpuinfo reports (the nominal clock; a boost clock
can exceed it, so a share above 100 % is possible).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from spread import working_tree_files  # noqa: E402 - the same copy of the working tree as the spread benchmark

BUDGET_TOTAL_S, BUDGET_TASK_S = 15 * 60, 3 * 60
FLOPS_PER_CYCLE = 32  # AVX2: 2 FMA units × 8 fp32 lanes × 2 (multiply + add)


def run_pipeline(keep: Path | None, jobs: int, here: bool) -> Path:
    records = keep or ROOT / ".profile" / time.strftime("%Y%m%d-%H%M%S")
    records.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "STAGES_PROFILE": str(records.resolve())}
    jobs_args = ["--jobs", str(jobs)] if jobs > 1 else []
    if here:
        print("pipeline_profile: dvc repro --force in this checkout ...", flush=True)
        start = time.time()
        done = subprocess.run(["dvc", "repro", "--force", *jobs_args], cwd=ROOT, env=env)
        return finish(records, time.time() - start, done.returncode)
    with tempfile.TemporaryDirectory(prefix="pipeline-profile-") as tmp:
        work = Path(tmp) / "repo"
        for rel in working_tree_files(ROOT):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, work / rel)
        (work / ".dvc" / "config.local").write_text(
            f"[core]\n    no_scm = true\n[cache]\n    dir = {Path(tmp) / 'cache'}\n"
        )
        cmd = ["dvc", "repro", *jobs_args]
        print(f"pipeline_profile: {' '.join(cmd)} in {work} (empty cache) ...", flush=True)
        start = time.time()
        done = subprocess.run(cmd, cwd=work, env=env)
        total = time.time() - start
    return finish(records, total, done.returncode)


def finish(records: Path, total: float, returncode: int) -> Path:
    (records / "_total.json").write_text(json.dumps({"wall_s": round(total, 1), "returncode": returncode}))
    if returncode:
        sys.exit(f"pipeline_profile: dvc repro failed ({returncode}); partial records in {records}")
    return records


def load(records: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(f.read_text()) for f in sorted(records.glob("*.json")) if not f.name.startswith("_")]
    total = records / "_total.json"
    return rows, (json.loads(total.read_text()) if total.exists() else {})


def task_of(stage: str, tasks: list[str]) -> str:
    name = stage.partition("@")[0]
    return max((t for t in tasks if name.startswith(t + "-")), key=len, default=name)


def show(records: Path) -> None:
    import yaml

    rows, total = load(records)
    if not rows:
        sys.exit(f"pipeline_profile: no stage records in {records}")
    tasks = [k for k in yaml.safe_load((ROOT / "params.yaml").read_text()) if k != "common"]
    tasks += ["mini-imagenet"]
    per_task: dict[str, float] = {}
    for r in rows:
        per_task[task_of(r["stage"], tasks)] = per_task.get(task_of(r["stage"], tasks), 0.0) + r["wall_s"]
    print(f"{'stage':<34} {'wall s':>8} {'cpu s':>8} {'cpu/wall':>8} {'peak MB':>8}")
    for r in sorted(rows, key=lambda r: -r["wall_s"]):
        ratio = r["cpu_s"] / r["wall_s"] if r["wall_s"] else 0.0
        print(f"{r['stage']:<34} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {ratio:>8.2f} {r['peak_rss_mb']:>8.0f}")
    stage_sum = sum(r["wall_s"] for r in rows)
    print(f"{'sum of stages':<34} {stage_sum:>8.1f} {sum(r['cpu_s'] for r in rows):>8.1f}")
    if total:
        print(
            f"{'dvc repro, wall':<34} {total['wall_s']:>8.1f}   (DVC between stages: {total['wall_s'] - stage_sum:.0f} s)"
        )
    print(f"\n{'task':<20} {'wall s':>8}  budget {BUDGET_TASK_S} s")
    for task, wall in sorted(per_task.items(), key=lambda kv: -kv[1]):
        print(f"{task:<20} {wall:>8.1f}  {'OVER' if wall > BUDGET_TASK_S else 'ok'}")
    whole = total.get("wall_s", stage_sum)
    print(f"\nwhole pipeline {whole:.0f} s of a {BUDGET_TOTAL_S} s budget: {'OVER' if whole > BUDGET_TOTAL_S else 'ok'}"
          f"; {len(rows)} stages; records in {records}")  # fmt: skip


def cpu_peak() -> tuple[float, str]:
    """Peak fp32 FLOP/s of one core, and how it was computed."""
    mhz = 0.0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            mhz = float(line.split(":")[1])
            break
    peak = FLOPS_PER_CYCLE * mhz * 1e6
    return peak, f"{FLOPS_PER_CYCLE} FLOP/cycle × {mhz / 1000:.2f} GHz = {peak / 1e9:.0f} GFLOP/s"


def flops(tasks: list[str]) -> None:
    import flop_probes  # benchmarks/flop_probes.py: one model + batch per training stage
    import torch
    import yaml
    from torch.utils.flop_counter import FlopCounterMode

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    sections = sorted((k for k in params if k != "common"), key=len, reverse=True)
    per_core, how = cpu_peak()
    print(f"peak fp32 per core: {how}; each stage at its own thread count (<task>.threads or common.threads)")
    print(f"{'training stage':<32} {'threads':>7} {'GFLOP/step':>10} {'ms/step':>8} {'GFLOP/s':>8} {'of peak':>8}")
    for name, build in flop_probes.PROBES.items():
        if tasks and not any(name.startswith(t) for t in tasks):
            continue
        section = next((k for k in sections if name.startswith(k + "-")), None)
        threads = (params.get(section) or {}).get("threads") or params["common"]["threads"]
        torch.set_num_threads(threads)
        peak = per_core * threads
        torch.manual_seed(0)
        step = build()
        with FlopCounterMode(display=False) as counter:
            step()
        work = counter.get_total_flops()
        step()  # warm-up
        n, start = 3, time.perf_counter()
        for _ in range(n):
            step()
        seconds = (time.perf_counter() - start) / n
        rate = work / seconds
        print(f"{name:<32} {threads:>7} {work / 1e9:>10.2f} {seconds * 1000:>8.0f} {rate / 1e9:>8.1f} {rate / peak:>8.0%}",
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--keep", type=Path)
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--here", action="store_true")
    s = sub.add_parser("show")
    s.add_argument("records", type=Path, nargs="?")
    f = sub.add_parser("flops")
    f.add_argument("tasks", nargs="*")
    args = parser.parse_args()
    if args.command == "run":
        show(run_pipeline(args.keep, args.jobs, args.here))
    elif args.command == "show":
        runs = sorted((ROOT / ".profile").glob("*/")) if args.records is None else [args.records]
        if not runs:
            sys.exit("pipeline_profile: no earlier run in .profile/; `run` first")
        show(runs[-1])
    else:
        sys.path.insert(0, str(ROOT))
        import stages  # noqa: F401 - pins the CPU kernels (stages/__init__.py) before torch is imported

        flops(args.tasks)


if __name__ == "__main__":
    main()
