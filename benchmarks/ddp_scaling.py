"""Data-parallel scaling of one real training stage: samples/s at 1 and 2 (or more) processes.

    python benchmarks/ddp_scaling.py [--task news|ddpm] [--nproc 1 2] [--threads 1] [--epochs 3] [--steps 60]

Runs the stage exactly as DVC does (`python -m stages.<task>.train`, `common.nproc: N`, so N > 1 goes
through torchrun, gloo on CPU) on its sample-scale params and data in a temporary folder, MLflow off,
`--threads` torch threads per process. The rate is the one the stage itself writes to timings/
(news: samples/s averaged over epochs; ddpm: images/s over the run), measured by rank 0 over the whole
global batch, so process start-up and rendezvous are left out; the wall time of the whole command, with
them, is printed beside it. The machine's load (1-minute load average, CPU count) is printed first:
on a shared machine the figures say more about the load than about DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = {"news": ("news-train", "train_samples_per_s"), "ddpm": ("ddpm-train", "images_per_second")}


def prepare(task: str, root: Path) -> None:
    """The task's download and prepare stages, as functions, into `root`, with `root/params.yaml`."""
    import importlib

    from stages.common.params import CommonParams

    config = importlib.import_module(f"stages.{task}.config")
    p, _ = config.load(root / "params.yaml")
    common = CommonParams(device="cpu", threads=1, mlflow=False)
    for step in ("download", "prepare"):
        importlib.import_module(f"stages.{task}.{step}").run(p, common, config.Paths(root))


def write_params(root: Path, task: str, nproc: int, threads: int, overrides: dict) -> None:
    sections = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    sections["common"].update(device="cpu", threads=threads, nproc=nproc, mlflow=False)
    for key, value in overrides.items():
        sections[task][key] = {**sections[task].get(key, {}), **value}
    (root / "params.yaml").write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(RATE), default="news")
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--epochs", type=int, default=3, help="news: epochs (sample scale: 12)")
    ap.add_argument("--steps", type=int, default=60, help="ddpm: training steps (sample scale: 800)")
    args = ap.parse_args()
    overrides = {"train": {"epochs": args.epochs, "patience": 0}} if args.task == "news" else {
        "train": {"steps": args.steps, "checkpoint_every": 10**9}}  # fmt: skip
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, 1-minute load average {load:.1f} before the runs; "
          f"{args.threads} torch thread(s) per process; task {args.task}, sample-scale params")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ddp-scaling-") as tmp:
        root = Path(tmp)
        write_params(root, args.task, 1, args.threads, overrides)
        prepare(args.task, root)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("WORLD_SIZE", None)
        stage, key = RATE[args.task]
        base = None
        for n in args.nproc:
            write_params(root, args.task, n, args.threads, overrides)
            start = time.time()
            subprocess.run([sys.executable, "-m", f"stages.{args.task}.train"], cwd=root, env=env, check=True,
                           stdout=subprocess.DEVNULL, timeout=3600)  # fmt: skip
            wall = time.time() - start
            rate = json.loads((root / "timings" / f"{stage}.json").read_text())[key]
            base = base or rate
            print(f"nproc {n}: {rate:8.1f} samples/s  (x{rate / base:.2f} of nproc {args.nproc[0]}; "
                  f"whole command {wall:.1f} s; load average now {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
