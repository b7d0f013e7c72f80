"""dynconv on real mini-ImageNet data with a preset, in a scratch folder (params.yaml,
dvc.lock and the repo's outputs untouched); records the result for the task's report.

    python -m benchmarks.mini_imagenet_real <task> data [preset] [root]            # mini-imagenet download + prepare
    python -m benchmarks.mini_imagenet_real <task> train <model> [preset] [root]   # one model (both at once: 2 processes)
    python -m benchmarks.mini_imagenet_real <task> finish [preset] [root]          # evaluate, then reports/<task>_real.json
                                                                                   # and timings/<task>_real.json
    ... train <model> [preset] [root] --seed N     # another seed (task param `seed`), in <root>-seedN
    ... finish [preset] [root] --seeds 0 1         # also evaluate the other seeds' folders: the record gets each
                                                   # seed's accuracies and their mean ± std

The preset is one of presets/<task>.yaml (default `real`), root defaults to .cache/<task>-real. The shared data
section (`mini-imagenet:` of params.yaml) is overridden by the preset's own `mini-imagenet:` entry, else by the
preset of the same name in presets/mini-imagenet.yaml; the rest of the preset overrides the task's section.
The tracked equivalent is `python -m stages.common.preset [mini-imagenet <preset>] <task> <preset> --run`.
dynconv's package stage reads reports/dynconv_real.json (a dep in dvc.yaml); moving it to recorded `dvc exp run`s as
twolayer's is open.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
import time
from pathlib import Path

import yaml

from benchmarks.run_preset import merge
from stages.common.io import write_json
from stages.common.params import CommonParams, from_dict, read_params_file

DATA_KEY = "mini-imagenet"  # the shared data section of params.yaml
PARAMS_CLASS = {"dynconv": "DynconvParams"}  # twolayer's real-data runs are `dvc exp run`s (stages/common/record.py)


def command(task: str, preset: str, models: list[str], seeds: list[int] | None = None) -> str:
    """The shell line that reproduces a recorded run (both models trained at once, one process each)."""
    me = f"python -m benchmarks.mini_imagenet_real {task}"
    lines = [f"{me} data {preset}"]
    for seed in seeds or [0]:
        flag = f" --seed {seed}" if seed else ""
        lines.append("(" + " & ".join(f"{me} train {m} {preset}{flag}" for m in models) + " & wait)")
    finish = f"{me} finish {preset}" + (" --seeds " + " ".join(map(str, seeds)) if seeds else "")
    return " && ".join([*lines, finish])


def linked_folder(folder: Path, data_of: Path) -> Path:
    """`folder`, created, its data/ a link to data_of/data: another training run on the same prepared data."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to((data_of / "data").resolve())
    return folder


def seed_root(root: Path, seed: int) -> Path:
    """Seed 0 trains in root, seed N in root-seedN (its data/ a link to root's)."""
    return linked_folder(root.with_name(f"{root.name}-seed{seed}"), root) if seed else root


def seed_summary(task: str, metrics: dict) -> dict:
    """The per-seed figures a record keeps: test accuracy per subset."""
    return {"accuracy": metrics["accuracy"], "worst_single_over_rgb": metrics["worst_single_over_rgb"]}


def option(rest: list[str], flag: str) -> list[str]:
    """Remove `flag` and the numbers after it from rest; return those numbers."""
    if flag not in rest:
        return []
    i = rest.index(flag)
    j = i + 1
    while j < len(rest) and rest[j].isdigit():
        j += 1
    values = rest[i + 1 : j]
    del rest[i:j]
    return values


def presets(task: str) -> dict:
    return yaml.safe_load(Path("presets", f"{task}.yaml").read_text()) or {}


def params(task: str, preset: str):
    from stages.mini_imagenet import config as mi_config

    config = importlib.import_module(f"stages.{task}.config")
    all_params = read_params_file("params.yaml")
    overrides = copy.deepcopy(presets(task)[preset])
    data_over = overrides.pop(DATA_KEY, None)
    if data_over is None:
        data_over = copy.deepcopy(presets(DATA_KEY).get(preset, {}))
    p = from_dict(getattr(config, PARAMS_CLASS[task]), merge(copy.deepcopy(all_params[task]), overrides), task)
    mi = from_dict(mi_config.MiniImagenetParams, merge(copy.deepcopy(all_params[DATA_KEY]), data_over), DATA_KEY)
    common = from_dict(CommonParams, all_params.get("common", {}), "common")
    common.mlflow = False
    common.threads = 1  # one thread per process: the two models train at once on two cores
    return config, p, mi, common, data_over, overrides


def main(argv: list[str]) -> None:
    from stages.mini_imagenet import config as mi_config

    task, step, rest = argv[0], argv[1], argv[2:]
    if task not in PARAMS_CLASS:
        raise SystemExit(f"unknown task {task} ({' | '.join(PARAMS_CLASS)})")
    seed = int((option(rest, "--seed") or ["0"])[0])
    seeds = [int(x) for x in option(rest, "--seeds")]
    if seeds and seeds[0] != 0:
        raise SystemExit("--seeds starts with 0 (the run in root itself), e.g. --seeds 0 1")
    model = rest.pop(0) if step == "train" else None
    preset = rest[0] if rest else "real"
    root = Path(rest[1] if len(rest) > 1 else f".cache/{task}-real")
    config, p, mi, common, data_over, overrides = params(task, preset)
    p.seed = seed
    paths = config.Paths(seed_root(root, seed) if step == "train" else root)
    start = time.time()
    if step == "data":
        from stages.mini_imagenet import download, prepare

        download.run(mi, common, mi_config.Paths(root))
        prepare.run(mi, common, mi_config.Paths(root))
    elif step == "train":
        importlib.import_module(f"stages.{task}.train").run(p, common, paths, model)
    elif step == "finish":
        import numpy as np

        evaluate = importlib.import_module(f"stages.{task}.evaluate")
        metrics = evaluate.run(p, common, paths)
        with np.load(mi_config.Paths(root).prepared / "train.npz") as z:
            train_images = len(z[z.files[0]])
        record = {
            "preset": preset, "source": mi.data.source, "prepared_size": mi.prepare.image_size,
            "overrides": {DATA_KEY: data_over, task: overrides},
            "command": command(task, preset, list(config.MODELS), seeds), "train_images": train_images,
            "metrics": metrics,
        }  # fmt: skip
        if seeds:
            record["seeds"] = {}
            for s in seeds:
                p.seed = s
                m = metrics if s == 0 else evaluate.run(p, common, config.Paths(seed_root(root, s)))
                record["seeds"][str(s)] = seed_summary(task, m)
        write_json(Path("reports", f"{task}_real.json"), record)
        timings = {name: json.loads(paths.timings(f"{task}-train-{name}").read_text()) for name in config.MODELS}
        timings["evaluate"] = json.loads(paths.timings(f"{task}-evaluate").read_text())
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        timings["note"] = f"{os.cpu_count()}-core CPU; load average (1, 5, 15 min) when evaluation finished: {load}"
        write_json(Path("timings", f"{task}_real.json"), timings)
    else:
        raise SystemExit(f"unknown step {step} (data | train <model> | finish)")
    print(f"{task} real {step} {model or ''}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
