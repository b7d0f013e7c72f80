"""Does torch.compile pay on this CPU? The trainers furthest from the fp32 peak, eager against compiled.

    python -m benchmarks.compile_speed                      # pokemon strong30, news agsample: 1 thread, 20 steps
    python -m benchmarks.compile_speed --threads 2 --steps 30 --tasks pokemon

Each model is built by benchmarks/gpu_check.py's builder for its task at the named preset (the real batch size
and shapes, random batches), then the trainer's step is timed eager and then compiled (`torch.compile` of the
model, default mode), each after `--warmup` steps timed apart: the compiled warm-up holds the compilation. Eager
and compiled run one after the other in this process, so their ratio shares the machine's load. Prints per task:
ms per step each way, the ratio, the compilation's extra seconds, the steps after which compiling pays for
itself, and how many steps one run of the preset takes (its epochs × steps per epoch on the course's data).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.gpu_check import Task, news, pokemon, run_task

# task -> (its gpu_check builder with the preset, the training examples of the preset's data)
CASES: dict[str, tuple[Task, int]] = {
    "pokemon": (Task(pokemon, (("pokemon", "strong30"),)), 632),  # ../shared/data/pokemon_hw4: 632 train sprites
    "news": (Task(news, (("news", "agsample"),)), 4000),  # the AG News sample: 4,000 train texts (presets/news.yaml)
}


def run_steps(task: str, params: Path, examples: int) -> int:
    """Optimizer steps in one run of the preset: epochs × ceil(examples / batch) × ensemble members."""
    import yaml

    t = yaml.safe_load(params.read_text(encoding="utf-8"))[task]["train"]
    return t["epochs"] * math.ceil(examples / t["batch_size"]) * int(t.get("members", 1))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(CASES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from stages.common.runtime import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    print(
        f"cpu, {args.threads} thread(s), {args.steps} timed steps after {args.warmup} warm-up, torch {torch.__version__}"
    )
    print(
        "| task | preset | batch | eager ms/step | compiled ms/step | eager / compiled | compile s | pays after"
        " steps | steps per run |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    with tempfile.TemporaryDirectory(prefix="compile_speed_") as folder:
        for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
            task, examples = CASES[name]
            rows = [run_task(name, task, device, False, args.steps, args.warmup, None, Path(folder), c)
                    for c in (False, True)]  # fmt: skip
            eager, compiled = rows
            if eager["error"] or compiled["error"]:
                print(f"| {name} | {eager['preset']} | error: {eager['error'] or compiled['error']} |||||||")
                failed = True
                continue
            saved = eager["step_ms"] - compiled["step_ms"]
            extra = compiled["warmup_s"] - eager["warmup_s"]
            pays = f"{math.ceil(1000 * extra / saved):,}" if saved > 0 else "never"
            steps = run_steps(name, Path(folder) / f"{name}.yaml", examples)
            print(f"| {name} | {eager['preset']} | {eager['batch_size']} | {eager['step_ms']} | {compiled['step_ms']} |"
                  f" {eager['step_ms'] / compiled['step_ms']:.2f} | {extra:.1f} | {pays} | {steps:,} |")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
