"""pokemon-evaluate: FID and PDR of the test completions, pixel accuracy of the dev completions.

- FID: rendered test completions against the real train sprites (features from
  pokemon-fid-reference); with 80 images it is a small-sample estimate, so the
  extractor and both counts are recorded next to it.
- PDR: the share of completions our classifier (pokemon-classifier) accepts; next to it the mean
  P(pokemon) it gives them (no threshold: `pdr_mean_probability`).
- dev pixel accuracy: completed tokens 241..400 equal to the ground truth.
"""

from __future__ import annotations

import numpy as np

from stages.common import fid
from stages.common.cli import main
from stages.common.io import DataError, write_json
from stages.common.params import to_dict
from stages.common.runtime import setup
from stages.common.tracking import tracked_run
from stages.pokemon import config, pdr
from stages.pokemon.data import PREFIX_LEN, load_prepared, read_pixels, render


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> dict:
    device = str(setup(p.seed, common.device, common.threads, common.kernels))
    data = load_prepared(paths.prepared)
    palette = data["palette"]
    test = read_pixels(paths.predictions / "test.txt", len(palette), len(data["test_prefix"]))
    dev = read_pixels(paths.predictions / "dev.txt", len(palette), len(data["dev"]))
    if not np.array_equal(test[:, :PREFIX_LEN], data["test_prefix"]):
        raise DataError(f"{paths.predictions / 'test.txt'}: completions do not start with the test prefixes")

    extractor = fid.load_extractor(device, p.evaluate.fid_extractor)
    real_features, _ = fid.load_reference(paths.fid_reference, extractor[1], "pokemon-fid-reference")
    fake_features = fid.inception_features(render(test, palette), extractor, device=device)
    result = fid.FidResult(
        fid.frechet_distance(real_features, fake_features), extractor[1], len(real_features), len(test)
    )

    judge = pdr.load(paths.classifier, device)
    metrics = {
        **result.as_dict(),
        "pdr": pdr.detection_rate(*judge, test, palette),
        "pdr_mean_probability": float(pdr.probabilities(judge[0], test, palette).mean()),
        "pdr_dev": pdr.detection_rate(*judge, dev, palette),
        "pdr_real_dev": pdr.detection_rate(*judge, data["dev"], palette),
        "dev_pixel_accuracy": float((dev[:, PREFIX_LEN:] == data["dev"][:, PREFIX_LEN:]).mean()),
    }
    for name in config.BASELINES:
        metrics[f"passes_{name}"] = config.passes(name, metrics["fid"], metrics["pdr"])
    write_json(paths.metrics / "pokemon.json", metrics)
    with tracked_run(
        config.TASK, "pokemon-evaluate", {"evaluate": to_dict(p.evaluate)}, common.mlflow, paths.root
    ) as tracker:
        tracker.log_metrics(metrics)
        tracker.set_tags({"fid_extractor": extractor[1]})
    print(
        "pokemon-evaluate: "
        + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    )
    return metrics


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
