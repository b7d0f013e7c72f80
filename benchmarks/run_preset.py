"""Run a task's stages with a named preset into a scratch folder, leaving params.yaml, dvc.lock and the
repo's outputs alone (for real-data checks; `python -m stages.common.preset <task> <name> --run` is the
tracked way).

    python benchmarks/run_preset.py coco-caption course /tmp/cc-course [config ...]
    python benchmarks/run_preset.py vit cpu15 /tmp/vit-cpu15

coco-caption with configs named: only those are trained and predicted (several processes can share one
folder, one config each, once the first has prepared the data); evaluate and package run when every
configuration of the matrix has predictions in the folder.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import yaml

from stages.common.params import CommonParams, from_dict, read_params_file


def merge(a: dict, b: dict) -> dict:
    """Deep-merge the preset overrides `b` into the params section `a` (in place); returns `a`."""
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a


def merged(task: str, preset: str) -> dict:
    section = copy.deepcopy(read_params_file("params.yaml")[task])
    overrides = (yaml.safe_load(Path("presets", f"{task}.yaml").read_text()) or {})[preset]
    return merge(section, overrides)


def main() -> None:
    task, preset, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    common = from_dict(CommonParams, read_params_file("params.yaml").get("common", {}), "common")
    common.mlflow = False
    start = time.time()
    if task == "coco-caption":
        from stages.coco_caption import config, download, evaluate, package, predict, prepare, train

        p = from_dict(config.CocoCaptionParams, merged(task, preset), task)
        names = sys.argv[4:] or list(p.configs)
        paths = config.Paths(root)
        if not paths.prepared.exists():
            download.run(p, common, paths)
            prepare.run(p, common, paths)
        for name in names:
            train.run(p, common, paths, name)
            predict.run(p, common, paths, name)
        if all(paths.predictions(name).exists() for name in p.configs):
            evaluate.run(p, common, paths)
            package.run(p, common, paths)
    elif task == "vit":
        from stages.vit import config, download, evaluate, package, prepare, train

        p = from_dict(config.VitParams, merged(task, preset), task)
        paths = config.Paths(root)
        download.run(p, common, paths)
        prepare.run(p, common, paths)
        train.run(p, common, paths)
        evaluate.run(p, common, paths)
        package.run(p, common, paths)
    else:
        raise SystemExit(f"unknown task {task}")
    print(f"{task} {preset}: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
