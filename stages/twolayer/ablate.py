"""The twolayer ablations as `dvc exp run` experiments at sample scale; records reports/twolayer_ablations.json.

    python -m stages.twolayer.ablate [name ...]     (from the repo root, committed workspace)

Not a DVC stage: a driver, as stages/dip_ddpm/ablate.py. Each variant is one `dvc exp run -n tl-abl-<variant> -S <override> ... twolayer-evaluate` (its row keeps the
experiment's name and commit: `git show <commit>:dvc.lock` says what made it) (both models see the same overrides;
ResNet34 comes from the run cache when only two-layer keys change). After every experiment the
workspace's reports/twolayer_detail.json is read; at the end params.yaml is restored and `dvc repro
twolayer-package` brings the default outputs back (from the run cache) and writes the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stages.common.io import write_json
from stages.common.record import run_named, slug

# name: (group, overrides). The `seed` rows and the default give the run-to-run spread of the default configuration.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "hybrid (default)": ("kind", []),
    "attention": ("kind", ["twolayer.twolayer.kind=attention"]),
    "rrdb": ("kind", ["twolayer.twolayer.kind=rrdb"]),
    "conv": ("kind", ["twolayer.twolayer.kind=conv"]),
    "hybrid, 1 main layer": ("depth", ["twolayer.twolayer.main_layers=1"]),
    "hybrid, width 64": ("width", ["twolayer.twolayer.dim=64"]),
    "hybrid, depthwise kernel 3": ("kernel", ["twolayer.twolayer.dw_kernel=3"]),
    "hybrid, patch 2 (4× tokens)": ("patch", ["twolayer.twolayer.patch=2", "twolayer.twolayer.stem_kernel=5"]),
    "no augmentation (both models)": ("augment", ["twolayer.augment.crop_pad=0.0", "twolayer.augment.flip=false"]),
    "seed 1": ("seed", ["twolayer.seed=1"]),
    "seed 2": ("seed", ["twolayer.seed=2"]),
}
OUT = Path("reports/twolayer_ablations.json")
PREFIX = "tl-abl"  # experiment names: tl-abl-<the variant's name, slugged>


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(selected: list[str]) -> None:
    old = json.loads(OUT.read_text()) if OUT.is_file() else {}
    runs = {r["name"]: r for r in old.get("runs", [])}
    try:
        for name, (group, overrides) in VARIANTS.items():
            if selected and name not in selected:
                continue
            run(["git", "checkout", "--", "params.yaml"])  # -S applies on top of the workspace: start from the defaults
            exp = slug(PREFIX, name)
            commit = run_named(exp, [*[a for o in overrides for a in ("-S", o)], "twolayer-evaluate"])
            m = json.loads(Path("reports/twolayer_detail.json").read_text())
            runs[name] = {
                "name": name, "group": group, "overrides": overrides, "experiment": exp, "commit": commit,
                "twolayer_test": m["twolayer"]["test_accuracy"], "resnet34_test": m["resnet34"]["test_accuracy"],
                "twolayer_val": m["twolayer"]["best_val_accuracy"], "resnet34_val": m["resnet34"]["best_val_accuracy"],
                "ratio": m["ratio"], "twolayer_parameters": m["twolayer"]["parameters"],
                "twolayer_flops": m["twolayer"]["flops"], "receptive_field": m["twolayer"]["receptive_field"],
            }  # fmt: skip
            write_json(OUT, {"scale": "sample: the params.yaml defaults", "runs": list(runs.values())})
            print(json.dumps(runs[name]), flush=True)
    finally:
        run(["git", "checkout", "--", "params.yaml"])
    order = list(VARIANTS)
    write_json(OUT, {"scale": "sample: the params.yaml defaults",
                     "runs": sorted(runs.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else 99)})  # fmt: skip
    run(["dvc", "repro", "twolayer-package"])


if __name__ == "__main__":
    main(sys.argv[1:])
