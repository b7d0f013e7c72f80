"""The twolayer task on real data with a preset, in a scratch folder (params.yaml, dvc.lock and the repo's
outputs untouched); records the result for the report.

    python -m benchmarks.twolayer_real data  [preset] [root]   # mini-imagenet download + prepare
    python -m benchmarks.twolayer_real train <model> [preset] [root]   # one model (run both at once: 2 processes)
    python -m benchmarks.twolayer_real finish [preset] [root]  # evaluate, then reports/twolayer_real.json and
                                                               # timings/twolayer_real.json

Defaults: preset `real` of presets/twolayer.yaml, root .cache/twolayer-real. The data settings of the
preset's `mini-imagenet:` entry (source, prepare.image_size) override the mini-imagenet section; the rest
override the twolayer section. The tracked equivalent:

    python -m stages.common.preset twolayer real --run   # its mini-imagenet: entry sets that section
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import yaml

from stages.common.io import write_json
from stages.common.params import CommonParams, from_dict, read_params_file

COMMAND = ("python -m benchmarks.twolayer_real data && (python -m benchmarks.twolayer_real train twolayer &"
           " python -m benchmarks.twolayer_real train resnet34 & wait) && python -m benchmarks.twolayer_real finish")  # fmt: skip
DATA_KEY = "mini-imagenet"  # in a preset: overrides of the shared data section, not of twolayer


def merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a


def params(preset: str):
    from stages.mini_imagenet import config as mi_config
    from stages.twolayer import config

    all_params = read_params_file("params.yaml")
    overrides = copy.deepcopy((yaml.safe_load(Path("presets/twolayer.yaml").read_text()) or {})[preset])
    data_over = overrides.pop(DATA_KEY, {})
    p = from_dict(config.TwolayerParams, merge(copy.deepcopy(all_params["twolayer"]), overrides), "twolayer")
    mi = from_dict(mi_config.MiniImagenetParams, merge(copy.deepcopy(all_params[DATA_KEY]), data_over), DATA_KEY)
    common = from_dict(CommonParams, all_params.get("common", {}), "common")
    common.mlflow = False
    return p, mi, common, data_over, overrides


def main() -> None:
    from stages.mini_imagenet import config as mi_config
    from stages.twolayer import config

    step, rest = sys.argv[1], sys.argv[2:]
    model = rest.pop(0) if step == "train" else None
    preset = rest[0] if rest else "real"
    root = Path(rest[1] if len(rest) > 1 else ".cache/twolayer-real")
    p, mi, common, data_over, overrides = params(preset)
    paths = config.Paths(root)
    start = time.time()
    if step == "data":
        from stages.mini_imagenet import download, prepare

        download.run(mi, common, mi_config.Paths(root))
        prepare.run(mi, common, mi_config.Paths(root))
    elif step == "train":
        from stages.twolayer import train

        train.run(p, common, paths, model)
    elif step == "finish":
        from stages.twolayer import evaluate

        metrics = evaluate.run(p, common, paths)
        train_images = json.loads(paths.train_metrics("twolayer").read_text())["train_images"]
        write_json("reports/twolayer_real.json", {
            "preset": preset, "source": mi.data.source, "prepared_size": mi.prepare.image_size,
            "overrides": {DATA_KEY: data_over, "twolayer": overrides}, "command": COMMAND,
            "train_images": train_images, "metrics": metrics,
        })  # fmt: skip
        timings = {name: json.loads(paths.timings(f"twolayer-train-{name}").read_text()) for name in config.MODELS}
        timings["evaluate"] = json.loads(paths.timings("twolayer-evaluate").read_text())
        timings["note"] = (
            "2-core CPU shared with other sessions' jobs (load average 12-22 during training): slow and noisy"
        )
        write_json("timings/twolayer_real.json", timings)
    else:
        raise SystemExit(f"unknown step {step} (data | train <model> | finish)")
    print(f"twolayer_real {step} {model or ''}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
