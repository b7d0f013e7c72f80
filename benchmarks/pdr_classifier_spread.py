"""PDR's spread from the classifier alone: the same language-model completions, the classifier retrained.

    python benchmarks/pdr_classifier_spread.py [--seeds 0 1 2] [--threads 1 2] [--json out.json]

Reads `data/pokemon/prepared` and `data/pokemon/predictions` of this checkout (run `dvc repro
pokemon-predict` first), retrains `pokemon-classifier` with the params in params.yaml for every
seed × thread count in a scratch folder (the repo's outputs are not touched), and prints PDR of the
test and dev completions for each, then the spread (max − min, std) of each over all runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.pokemon import classifier, config, pdr  # noqa: E402
from stages.pokemon.data import load_prepared, read_pixels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    p, common = config.load(ROOT / "params.yaml")
    common = dataclasses.replace(common, mlflow=False)
    repo = config.Paths(ROOT)
    data = load_prepared(repo.prepared)
    palette = data["palette"]
    test = read_pixels(repo.predictions / "test.txt", len(palette), len(data["test_prefix"]))
    dev = read_pixels(repo.predictions / "dev.txt", len(palette), len(data["dev"]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = config.Paths(Path(tmp))
        paths.prepared.parent.mkdir(parents=True)
        paths.prepared.symlink_to(repo.prepared.resolve())
        for threads in args.threads:
            for seed in args.seeds:
                start = time.time()
                metrics = classifier.run(
                    dataclasses.replace(p, seed=seed), dataclasses.replace(common, threads=threads), paths
                )
                judge = pdr.load(paths.classifier)
                row = {
                    "seed": seed,
                    "threads": threads,
                    "pdr": pdr.detection_rate(*judge, test, palette),
                    "pdr_dev": pdr.detection_rate(*judge, dev, palette),
                    "pdr_real_dev": pdr.detection_rate(*judge, data["dev"], palette),
                    "dev_accuracy": metrics["dev_accuracy"],
                    "seconds": round(time.time() - start, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for key in ("pdr", "pdr_dev", "pdr_real_dev"):
        values = [r[key] for r in rows]
        summary[key] = {
            "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
            "range": max(values) - min(values),
        }
        s = summary[key]
        print(
            f"{key}: {s['mean']:.3f} ± {s['std']:.3f} (min {s['min']:.3f}, max {s['max']:.3f}, range {s['range']:.3f})"
        )
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
