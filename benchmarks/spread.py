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

The seed keys and headline metrics of every task are in TASKS below.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Task:
    seed_keys: tuple[str, ...]  # params.yaml keys set to the run's seed; a `*` stands for every ensemble member
    metrics: dict[str, tuple[str, str]]  # headline name -> (metrics file, dotted key inside it)
    target: str = ""  # the DVC stage that ends training + evaluation; default <task>-evaluate


# The headline metrics of every task (one table; the README's result tables state their spread).
TASKS: dict[str, Task] = {
    "pokemon": Task(
        ("pokemon.seed",),
        {
            "FID": ("metrics/pokemon.json", "fid"),
            "PDR": ("metrics/pokemon.json", "pdr"),
            "PDR mean probability": ("metrics/pokemon.json", "pdr_mean_probability"),
        },
    ),
    "news": Task(("news.seed",), {"dev accuracy": ("metrics/news.json", "val_accuracy")}),
    # mygo's members each have a seed: member m gets its committed seed + 100 × the run's seed
    "mygo": Task(("mygo.models.*.seed",), {"ensemble accuracy": ("metrics/mygo.json", "accuracy")}),
    "coco-caption": Task(
        ("coco-caption.seed",),
        {
            "BLEU-4 h4_l6_lr1e-3": ("metrics/coco-caption.json", "h4_l6_lr1e-3.bleu4"),
            "BLEU-4 h4_l6_lr1e-4": ("metrics/coco-caption.json", "h4_l6_lr1e-4.bleu4"),
            "BLEU-4 h2_l2_lr1e-4": ("metrics/coco-caption.json", "h2_l2_lr1e-4.bleu4"),
        },
    ),
    "vit": Task(("vit.seed",), {"test accuracy": ("metrics/vit.json", "test_accuracy")}),
    "ddpm": Task(("ddpm.seed",), {"FID": ("metrics/ddpm.json", "fid")}),
    "vlm-caption": Task(("vlm-caption.seed",), {"BLEU": ("metrics/vlm-caption.json", "bleu")}),
    # dynconv trains `dynconv.train.runs` models per seed (seeds seed, seed+1, …): the metrics are their means
    "dynconv": Task(
        ("dynconv.seed",),
        {
            "RGB accuracy, dynamic": ("metrics/dynconv.json", "accuracy.dynamic.RGB"),
            "worst single channel, dynamic": ("metrics/dynconv.json", "worst_single_accuracy.dynamic"),
            "RGB accuracy, naive": ("metrics/dynconv.json", "accuracy.naive.RGB"),
        },
    ),
    "twolayer": Task(
        ("twolayer.seed",),
        {
            "two-layer test accuracy": ("metrics/twolayer.json", "twolayer.test_accuracy"),
            "ResNet34 test accuracy": ("metrics/twolayer.json", "resnet34.test_accuracy"),
            "ratio": ("metrics/twolayer.json", "ratio"),
        },
    ),
    # the DDPM prior (the ddpm task) stays as committed: the seed is DIP's initialisation and the reverse noise
    "dip-ddpm": Task(
        ("dip-ddpm.seed",),
        {
            "PSNR σ25, DIP+DDPM": ("metrics/dip-ddpm.json", "sigma_25.dip-ddpm.psnr.mean"),
            "PSNR σ25, DIP": ("metrics/dip-ddpm.json", "sigma_25.dip.psnr.mean"),
            "PSNR σ25, DDPM": ("metrics/dip-ddpm.json", "sigma_25.ddpm.psnr.mean"),
        },
    ),
}
MEMBER_SEED_STRIDE = 100


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


def summarise(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, help="set common.threads (and the task's own threads) in every run")
    parser.add_argument("--json", type=Path, help="write the runs and the summary here")
    parser.add_argument("--no-run-cache", action="store_true", help="re-run every stage, even one seen before")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own copy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = parser.parse_args()
    if len(args.seeds) < 3:
        print("note: fewer than 3 seeds give a poor estimate of the spread", file=sys.stderr)
    spec = TASKS[args.task]
    target = spec.target or f"{args.task}-evaluate"
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
                cmd = ["dvc", "repro", target] + (["--no-run-cache"] if args.no_run_cache else [])
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
                values = {name: read_metric(copy, file, key) for name, (file, key) in spec.metrics.items()}
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
    summary = {name: summarise([r["metrics"][name] for r in runs]) for name in spec.metrics}
    for name, s in summary.items():
        print(
            f"{args.task} {name}: {s['mean']:.4g} ± {s['std']:.2g} (min {s['min']:.4g}, max {s['max']:.4g}, n {s['n']})"
        )
    if args.json:
        record = {
            "task": args.task,
            "target": target,
            "seeds": args.seeds,
            "seed_keys": list(spec.seed_keys),
            "threads": args.threads,
            "runs": runs,
            "summary": summary,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
