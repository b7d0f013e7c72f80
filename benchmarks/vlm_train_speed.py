"""Seconds per step of vlm-caption-train, before vs after, in one run (same load), and the after chain as dvc runs it.

    python benchmarks/vlm_train_speed.py --before <checkout of the old code> --work <scratch folder>

Not a test (pytest collects test_*.py only). Each probe is a fresh process that runs the real stage function
(`train.run`) of one checkout at its own params.yaml (only max_steps and checkpoint_every changed) on the same
prepared sample, and times every `SFTTrainer.training_step` call (wall and CPU), skipping the first steps.
Before and after probes alternate, so both see the same load. `--chain` then runs the six vlm-caption stages of
this checkout as `python -m stages.vlm_caption.<stage>` in a copy of it, as dvc would, with wall and CPU times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
STAGES = ("download", "prepare", "train", "predict", "evaluate", "package")


def probe(code: str, root: str, steps: int, skip: int, threads: int) -> None:
    sys.path.insert(0, code)
    import trl

    from stages.vlm_caption import config, train

    marks: list[tuple[float, float]] = []
    original = trl.SFTTrainer.training_step

    def timed(self, *args, **kwargs):
        marks.append((time.perf_counter(), time.process_time()))
        return original(self, *args, **kwargs)

    trl.SFTTrainer.training_step = timed
    p, common = config.load(Path(code) / "params.yaml")
    common.mlflow = False
    p.train.max_steps, p.train.checkpoint_every = steps, 0
    if threads:
        p.threads = threads
    wall, cpu = time.perf_counter(), time.process_time()
    train.run(p, common, config.Paths(Path(root)))
    n = len(marks) - 1 - skip
    print(
        "PROBE "
        + json.dumps(
            {
                "wall_per_step": (marks[-1][0] - marks[skip][0]) / n,
                "cpu_per_step": (marks[-1][1] - marks[skip][1]) / n,
                "stage_wall": time.perf_counter() - wall,
                "stage_cpu": time.process_time() - cpu,
                "threads": p.threads or common.threads,
            }
        )
    )


def run_probe(code: Path, root: Path, steps: int, skip: int, threads: int = 0) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, __file__, "--probe", str(code), str(root), str(steps), str(skip), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("PROBE "))[6:])
    return {**result, "load_before": load, "load_after": os.getloadavg()[0]}


def prepared_sample(work: Path) -> Path:
    """download + prepare of this checkout's sample params, once (the prepared format is the same before/after)."""
    data = work / "data-root"
    if not (data / "data" / "vlm-caption" / "prepared").is_dir():
        sys.path.insert(0, str(HERE))
        from stages.vlm_caption import config, download, prepare

        p, common = config.load(HERE / "params.yaml")
        paths = config.Paths(data)
        download.run(p, common, paths)
        prepare.run(p, common, paths)
    return data / "data" / "vlm-caption" / "prepared"


def chain(work: Path) -> None:
    repo = work / "after-repo"
    shutil.rmtree(repo, ignore_errors=True)
    files = subprocess.run(["git", "ls-files"], cwd=HERE, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (HERE / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HERE / f, repo / f)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    total_wall = total_cpu = 0.0
    for stage in STAGES:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.vlm_caption.{stage}"], cwd=repo, env=env, check=True,
                       capture_output=True)  # fmt: skip
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"chain  vlm-caption-{stage:<9} wall {wall:6.1f} s  cpu {cpu:6.1f} s  load {os.getloadavg()[0]:.1f}")
    print(f"chain  total                  wall {total_wall:6.1f} s  cpu {total_cpu:6.1f} s")
    metrics = json.loads((repo / "metrics" / "vlm-caption.json").read_text())
    train = json.loads((repo / "metrics" / "vlm-caption_train.json").read_text())
    print(
        f"chain  BLEU {metrics['bleu']} (baseline {metrics['baseline_bleu']}), exact match {metrics['exact_match']}, "
        f"final train loss {train['final_train_loss']}, {train['steps']} steps"
    )


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        code, root, steps, skip, threads = sys.argv[2:7]
        return probe(code, root, int(steps), int(skip), int(threads))
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True, help="a checkout (or git archive) of the old code")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder")
    ap.add_argument("--steps-before", type=int, default=25)
    ap.add_argument("--steps-after", type=int, default=100)
    ap.add_argument("--skip", type=int, default=5, help="first steps not timed")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--two-threads", action="store_true", help="also the new code at 2 threads (one factor alone)")
    ap.add_argument("--chain", action="store_true", help="then run the six stages of this checkout as dvc would")
    args = ap.parse_args()
    prepared = prepared_sample(args.work)
    variants = [("before", args.before, args.steps_before, 0), ("after", HERE, args.steps_after, 0)]
    if args.two_threads:
        variants.append(("after-2-threads", HERE, args.steps_before, 2))
    rows: dict[str, list[dict]] = {name: [] for name, *_ in variants}
    for r in range(args.rounds):
        for name, code, steps, threads in variants:
            root = args.work / f"{name}-{r}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(prepared, root / "data" / "vlm-caption" / "prepared")
            res = run_probe(code.resolve(), root, steps, args.skip, threads)
            rows[name].append(res)
            print(
                f"round {r} {name:<15} {res['threads']} threads: {res['wall_per_step']:.3f} s/step wall, "
                f"{res['cpu_per_step']:.3f} s/step CPU ({steps} steps, load {res['load_before']:.1f}->"
                f"{res['load_after']:.1f})",
                flush=True,
            )
    for key in ("wall_per_step", "cpu_per_step"):
        mean = {name: sum(x[key] for x in runs) / args.rounds for name, runs in rows.items()}
        others = ", ".join(f"{name} {v:.4f} s (before/this {mean['before'] / v:.1f}x)" for name, v in mean.items())
        print(f"mean {key}: {others}")
    if args.chain:
        chain(args.work)


if __name__ == "__main__":
    main()
