"""The dip-ddpm ablations as `dvc exp run` experiments, collected into reports/dip-ddpm-ablations.json.

    python -m stages.dip_ddpm.ablate          # then: dvc repro dip-ddpm-package (the report's table)

Not a DVC stage: a driver. Each experiment is `dvc exp run -n dd-abl-<name> -S dip-ddpm.<key>=<value> dip-ddpm-package`
(its row keeps the experiment's name and commit: `git show <commit>:dvc.lock` says what made it)
on top of the committed params.yaml (which it restores before each run; commit your params first), so
DVC re-runs only the stages that depend on the changed key, and `dvc exp show` lists every one.
After the last, params.yaml is restored and the baseline outputs come back from DVC's run cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stages.common.record import run_named, slug
from stages.dip_ddpm import config

# (name, the -S settings under dip-ddpm., what it tests)
EXPERIMENTS = [
    ("t0 = 0", ["combine.t0=0"], "the DIP estimate alone (combine.dip_iterations)"),
    ("t0 = 4", ["combine.t0=4"], "start timestep"),
    ("t0 = 7", ["combine.t0=7"], "start timestep"),
    ("t0 = 12", ["combine.t0=12"], "start timestep ≈ the σ = 25 timestep (β ≈ 1: DDPM alone in 3 steps)"),
    ("fresh noise", ["combine.noise=fresh"], "SDEdit: fresh Gaussian noise instead of the residual"),
    ("fresh noise, t0 = 4", ["combine.noise=fresh", "combine.t0=4"], "SDEdit at a small t0"),
    ("DIP 30 iterations", ["combine.dip_iterations=30"], "a shorter DIP fit"),
    ("DIP 120 iterations", ["combine.dip_iterations=120"], "a longer DIP fit"),
    ("1 reverse step", ["combine.steps=1"], "reverse steps"),
    ("every reverse step", ["combine.steps=1000"], "reverse steps (t0 of them)"),
    ("guidance 0.1", ["combine.guidance=0.1"], "pull of x̂_0 towards y"),
    ("plain DIP net", ["net.arch=plain"], "DIP architecture: no skip connections (re-runs @dip too)"),
    ("DDPM η = 1", ["ddpm.eta=1.0"], "DDPM alone as the ancestral chain (a posterior sample)"),
    ("DDPM 3 steps", ["ddpm.steps=3"], "DDPM alone with as many U-Net evaluations as the combination"),
    ("seed 1", ["seed=1"], "run-to-run spread: DIP init and reverse noise"),
    ("seed 2", ["seed=2"], "run-to-run spread"),
]
METRICS = Path("reports", "dip-ddpm_detail.json")  # the whole evaluation (metrics/dip-ddpm.json: its headline view)
OUT = Path("reports", "dip-ddpm-ablations.json")
PREFIX = "dd-abl"  # experiment names: dd-abl-<the row's name, slugged>


def row(name: str, changed: str, m: dict, sigma: str) -> dict:
    e, cost = m[sigma], m["cost_per_image"][sigma]
    return {"name": name, "changed": changed, "dip": e["dip"]["psnr"]["mean"], "ddpm": e["ddpm"]["psnr"]["mean"],
            "dip-ddpm": e["dip-ddpm"]["psnr"]["mean"], "dip-ddpm_ssim": e["dip-ddpm"]["ssim"]["mean"],
            "gflops": cost["dip-ddpm"]["gflops"],
            "all_sigmas": {s: {k: m[s][k]["psnr"]["mean"] for k in ("dip", "dip_oracle", "ddpm", "dip-ddpm")}
                           for s in m if s.startswith("sigma_")}}  # fmt: skip


def sh(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(only: list[str]) -> None:
    base = json.loads(METRICS.read_text())
    sigma = base["reference_sigma"]
    rows = [row("baseline", "(params.yaml)", base, sigma)]
    for name, settings, _why in EXPERIMENTS:
        if only and name not in only:
            continue
        sh("git", "checkout", "--", "params.yaml")
        args = [a for s in settings for a in ("-S", f"{config.TASK}.{s}")]
        exp = slug(PREFIX, name)
        commit = run_named(exp, [*args, "dip-ddpm-package"])
        rows.append({**row(name, " ".join(settings), json.loads(METRICS.read_text()), sigma),
                     "experiment": exp, "commit": commit})  # fmt: skip
    sh("git", "checkout", "--", "params.yaml")
    sh("dvc", "repro", "dip-ddpm-package")  # the baseline again, from the run cache
    why = {name: w for name, _, w in EXPERIMENTS}
    for r in rows[1:]:
        r["tests"] = why[r["name"]]
    OUT.write_text(json.dumps({
        "sigma": float(sigma.removeprefix("sigma_")), "test_images": base["test_images"],
        "command": "python -m stages.dip_ddpm.ablate (each row: dvc exp run -S dip-ddpm.<key>=<value> dip-ddpm-package)",
        "rows": rows, "notes": [],
    }, indent=2, ensure_ascii=False) + "\n")  # fmt: skip
    print(f"{len(rows) - 1} experiments -> {OUT}; now `dvc repro dip-ddpm-package` puts them in the report")


if __name__ == "__main__":
    main(sys.argv[1:])
