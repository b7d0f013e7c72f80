"""Run a task's stages with a named preset into a scratch folder, leaving params.yaml, dvc.lock and the
repo's outputs alone (for real-data checks; `python -m stages.common.preset <task> <name> --run` is the
tracked way).

    python -m benchmarks.run_preset coco-caption course /tmp/cc-course [config ...]
    python -m benchmarks.run_preset vit cpu15 /tmp/vit-cpu15
    python -m benchmarks.run_preset pokemon strong30 /tmp/pk train.mirror=0.5 seed=1 common.threads=1

An argument `key=value` overrides one value of the task's section after the preset (`common.<key>` one of
the common section), as `-S` does; the value is read as YAML.

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


def nested(key: str, value: str) -> dict:
    """`a.b.c`, `v` -> {"a": {"b": {"c": yaml(v)}}}."""
    out: dict = yaml.safe_load(value)
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def main() -> None:
    task, preset, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    sets = [arg.split("=", 1) for arg in sys.argv[4:] if "=" in arg]
    args = [arg for arg in sys.argv[4:] if "=" not in arg]
    common_section = read_params_file("params.yaml").get("common", {})
    section = merged(task, preset)
    for key, value in sets:
        if key.startswith("common."):
            merge(common_section, nested(key.removeprefix("common."), value))
        else:
            merge(section, nested(key, value))
    common = from_dict(CommonParams, common_section, "common")
    common.mlflow = False
    start = time.time()
    if task == "coco-caption":
        from stages.coco_caption import config, download, evaluate, package, predict, prepare, train

        p = from_dict(config.CocoCaptionParams, section, task)
        names = args or list(p.configs)
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

        p = from_dict(config.VitParams, section, task)
        paths = config.Paths(root)
        download.run(p, common, paths)
        prepare.run(p, common, paths)
        train.run(p, common, paths)
        evaluate.run(p, common, paths)
        package.run(p, common, paths)
    elif task == "pokemon":
        from stages.pokemon import (
            classifier,
            config,
            download,
            evaluate,
            fid_reference,
            package,
            predict,
            prepare,
            train,
        )

        p = config.validate(from_dict(config.PokemonParams, section, task))
        paths = config.Paths(root)
        for stage in (download, prepare, classifier, fid_reference, train, predict, evaluate, package):
            stage.run(p, common, paths)
    else:
        raise SystemExit(f"unknown task {task}")
    print(f"{task} {preset}: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
