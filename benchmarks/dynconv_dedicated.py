"""Dedicated single-subset models on real data: what storing one model per channel combination would give.

The dynconv report compares the dynamic model (one model, any subset) with the naive model zero-filled. The
other alternative the cost analysis names is one model per subset; this trains it for the given subsets (the
naive backbone with `channel_sampling: <subset>`, i.e. always and only that subset, every other setting from
the preset) and records each one's test accuracy on its own subset next to the dynamic model's, from
reports/dynconv_real.json. Scratch folders, params.yaml and dvc.lock untouched; one thread per process.

    python -m benchmarks.dynconv_dedicated train B [preset] [root]    # one dedicated model (two at once: 2 processes)
    python -m benchmarks.dynconv_dedicated finish [preset] [root]     # reports/ and timings/dynconv_dedicated.json

preset: of presets/dynconv.yaml (default real64-30, the one reports/dynconv_real.json records); root defaults to
.cache/dynconv-dedicated, which holds the data (prepared once, by the first `train`) and one folder per subset.
Runs per model: `--runs N` after the subset (default 1).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from benchmarks.mini_imagenet_real import linked_folder, option, params
from stages.common.io import write_json

TASK = "dynconv"


def ensure_data(mi, common, root: Path) -> None:
    from stages.mini_imagenet import config as mi_config
    from stages.mini_imagenet import download, prepare

    paths = mi_config.Paths(root)
    if not (paths.prepared / "test.npz").is_file():
        download.run(mi, common, paths)
        prepare.run(mi, common, paths)


def train(subset: str, preset: str, root: Path, runs: int) -> None:
    from stages.dynconv import train as train_stage

    config, p, mi, common, *_ = params(TASK, preset)
    if subset not in config.SUBSETS or subset == "RGB":
        raise SystemExit(f"subset {subset}: one of {', '.join(s for s in config.SUBSETS if s != 'RGB')}")
    ensure_data(mi, common, root)
    p.models.naive.channel_sampling = subset
    p.train.runs = runs
    train_stage.run(p, common, config.Paths(linked_folder(root / subset, root)), "naive")


def finish(preset: str, root: Path) -> dict:
    import torch

    from stages.dynconv import config
    from stages.dynconv.model import load, predict
    from stages.mini_imagenet.data import load_split, to_tensor

    real = json.loads(Path("reports", "dynconv_real.json").read_text())
    if real.get("preset") != preset:
        raise SystemExit(f"reports/dynconv_real.json records preset {real.get('preset')}, not {preset}")
    x_u8, y = load_split(root / "data" / "mini-imagenet" / "prepared", "test")
    x, y = to_tensor(x_u8), torch.as_tensor(y)
    dynamic = real["metrics"]["accuracy"]["dynamic"]
    rows, timings = {}, {}
    for subset in config.SUBSETS:
        paths = config.Paths(root / subset)
        if not paths.model("naive").is_file():
            continue
        models, _ = load(paths.model("naive"))
        accs = [round(float((predict(m, x, subset, 100, "cpu") == y).float().mean()), 4) for m in models]
        rows[subset] = {"dedicated": accs, "dynamic": dynamic[subset]}
        timings[subset] = json.loads(paths.timings("dynconv-train-naive").read_text())
    if not rows:
        raise SystemExit(f"no dedicated model under {root} (run the train step first)")
    me = "python -m benchmarks.dynconv_dedicated"
    record = {
        "preset": preset, "source": real["source"], "test_images": len(y),
        "command": " && ".join(f"{me} train {s} {preset}" for s in rows) + f" && {me} finish {preset}",
        "runs": min(len(row["dedicated"]) for row in rows.values()),
        "rgb": {"dynamic": dynamic["RGB"], "naive": real["metrics"]["accuracy"]["naive"]["RGB"]},
        "subsets": rows,
    }  # fmt: skip
    write_json(Path("reports", "dynconv_dedicated.json"), record)
    loadavg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    timings["note"] = (
        f"{os.cpu_count()}-core CPU, one thread per model; load average (1, 5, 15 min) at finish: {loadavg}"
    )
    write_json(Path("timings", "dynconv_dedicated.json"), timings)
    return record


def main(argv: list[str]) -> None:
    step, rest = argv[0], argv[1:]
    runs = int((option(rest, "--runs") or ["1"])[0])
    start = time.time()
    if step == "train":
        subset, rest = rest[0], rest[1:]
        preset = rest[0] if rest else "real64-30"
        train(subset, preset, Path(rest[1] if len(rest) > 1 else ".cache/dynconv-dedicated"), runs)
    elif step == "finish":
        preset = rest[0] if rest else "real64-30"
        record = finish(preset, Path(rest[1] if len(rest) > 1 else ".cache/dynconv-dedicated"))
        for s, row in record["subsets"].items():
            print(f"{s}: dedicated {row['dedicated']}, dynamic {row['dynamic']}")
    else:
        raise SystemExit(f"unknown step {step} (train <subset> | finish)")
    print(f"dynconv dedicated {step}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
