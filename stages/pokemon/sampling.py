"""Choose how completions are sampled, on the dev split only: PDR and FID of dev completions per candidate.

    python -m stages.pokemon.sampling ROOT [ROOT ...] [--grid nucleus] [--seeds 4] [--ensemble]
        [--out measured/pokemon_sampling.json]

Each ROOT is a checkout whose pokemon outputs are in place (a `dvc exp apply`'d worktree of one trained run:
models/pokemon/model, models/pokemon/classifier.pt, data/pokemon/prepared, data/pokemon/fid_reference, its
params.yaml). For every candidate of the grid (`config.SAMPLING_GRIDS`) and every prediction seed it completes the 80
dev prefixes, then scores them as pokemon-evaluate scores test completions: PDR by that run's classifier, FID
against the same real train sprites, pixel accuracy against the true dev sprites. Test completions are never
made or read. The rule (`chosen`): the highest mean dev PDR among candidates whose mean dev FID is within the
strong baseline's FID bar. The table and the choice go to `--out`, with the command, date and machine.
With `--ensemble` the roots' models complete the prefixes together, as the members of one ensemble
(`pokemon.train.members`), judged and scored with the first root's classifier and reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import sys
from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, write_json

MAX_SEEDS = 64


def score(p, common, paths, seeds: int, candidates: list[dict], members: list[Path] | None = None) -> dict:
    """Every candidate × seed on one trained run's dev prefixes (p, common, paths: that run's), completed by its
    own model or, with `members`, by the ensemble of the models saved in those folders."""
    from stages.common import fid
    from stages.common.runtime import setup
    from stages.pokemon import pdr
    from stages.pokemon.data import PREFIX_LEN, load_prepared, render
    from stages.pokemon.model import complete, load_members

    device = str(setup(p.seed, common.device, common.threads, common.kernels))
    data = load_prepared(paths.prepared)
    palette, dev = data["palette"], data["dev"]
    model = [m for folder in members or [paths.model] for m in load_members(folder, device)]
    judge = pdr.load(paths.classifier, device)
    extractor = fid.load_extractor(device, p.evaluate.fid_extractor)
    real, _ = fid.load_reference(paths.fid_reference, extractor[1], "pokemon-fid-reference")

    rows = []
    for candidate in candidates:
        for seed in range(seeds):
            predict = dataclasses.replace(p.predict, strategy="sample", seed=seed, **candidate)
            completions = complete(model, dev[:, :PREFIX_LEN], predict, device)
            fake = fid.inception_features(render(completions, palette), extractor, device=device)
            rows.append({
                **candidate,
                "seed": seed,
                "pdr_dev": pdr.detection_rate(*judge, completions, palette),
                "fid_dev": fid.frechet_distance(real, fake),
                "dev_pixel_accuracy": float((completions[:, PREFIX_LEN:] == dev[:, PREFIX_LEN:]).mean()),
            })  # fmt: skip
            print(f"{paths.root}: {rows[-1]}", flush=True)
    return {"root": str(paths.root), "training_seed": p.seed, "members": [str(f) for f in members or []], "rows": rows}


def summarise(runs: list[dict], candidates: list[dict]) -> list[dict]:
    """Mean and std of each score per candidate, over every run and seed."""
    table = []
    for candidate in candidates:
        rows = [r for run in runs for r in run["rows"] if all(r[k] == v for k, v in candidate.items())]
        entry = {**candidate, "n": len(rows)}
        for key in ("pdr_dev", "fid_dev", "dev_pixel_accuracy"):
            values = np.array([r[key] for r in rows], dtype=float)
            entry[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        table.append(entry)
    return table


def chosen(table: list[dict]) -> dict:
    """The highest mean dev PDR among candidates whose mean dev FID meets the strong baseline's FID bar."""
    from stages.pokemon import config

    max_fid = config.BASELINES["strong"][0]
    eligible = [e for e in table if e["fid_dev"]["mean"] <= max_fid]
    if not eligible:
        raise DataError(f"no sampling candidate has a mean dev FID within {max_fid}")
    best = max(eligible, key=lambda e: e["pdr_dev"]["mean"])
    return {k: v for k, v in best.items() if k not in ("n", "pdr_dev", "fid_dev", "dev_pixel_accuracy")}


def run(roots: list[str], seeds: int, out: str, grid: str = "nucleus", ensemble: bool = False) -> dict:
    from stages.common.runtime import machine
    from stages.pokemon import config

    if not roots:
        raise DataError("usage: python -m stages.pokemon.sampling ROOT [ROOT ...]")
    if not 1 <= seeds <= MAX_SEEDS:
        raise DataError(f"--seeds {seeds}: must be 1..{MAX_SEEDS}")
    for root in roots:
        if not (Path(root) / "params.yaml").is_file():
            raise DataError(f"{root}: no params.yaml (give a checkout with the pokemon outputs in place)")
    if grid not in config.SAMPLING_GRIDS:
        raise DataError(f"--grid {grid}: must be one of {', '.join(config.SAMPLING_GRIDS)}")
    candidates = config.SAMPLING_GRIDS[grid]
    if ensemble:  # one ensemble of every root's model, judged and scored with the first root's files
        models = [config.Paths(Path(root)).model for root in roots]
        runs = [score(*config.load(Path(roots[0]) / "params.yaml"), config.Paths(Path(roots[0])), seeds, candidates,
                      models)]  # fmt: skip
    else:
        runs = [
            score(*config.load(Path(root) / "params.yaml"), config.Paths(Path(root)), seeds, candidates)
            for root in roots
        ]
    table = summarise(runs, candidates)
    result = {
        "what": "Sampling candidates scored on dev completions only (80 dev prefixes per run and seed): PDR by "
        "each run's own classifier, FID against the real train sprites, dev pixel accuracy; mean and std over "
        "runs and prediction seeds. Test completions were not made.",
        "command": "python -m stages.pokemon.sampling " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": {**machine(), "python": platform.python_version()},
        "runs": runs,
        "table": table,
        "chosen": chosen(table),
    }
    write_json(out, result)
    for e in table:
        print(f"{e}")
    print(f"chosen: {result['chosen']} -> {out}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*")
    parser.add_argument("--grid", default="nucleus")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", default="measured/pokemon_sampling.json")
    parser.add_argument("--ensemble", action="store_true", help="score the roots' models as one ensemble")
    args = parser.parse_args()
    main(lambda: run(args.roots, args.seeds, args.out, args.grid, args.ensemble))
