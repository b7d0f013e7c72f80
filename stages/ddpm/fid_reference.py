"""ddpm-fid-reference: Inception features of the real training images at 64×64, computed once.

A stage of its own so that a new model or sampler does not pay for the real side
of FID again. The reference is the first `evaluate.fid_real_images` images of
data/ddpm/raw (name order), centre-cropped and resized to 64×64 like the submission.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common import fid
from stages.common.cli import main
from stages.common.io import atomic_path, read_json, write_json
from stages.common.runtime import setup
from stages.ddpm import config
from stages.ddpm.prepare import read_folder


def run(p: config.DdpmParams, common: config.CommonParams, paths: config.Paths) -> Path:
    device = str(setup(p.seed, common.device, common.threads))
    real = read_folder(paths.raw, config.SUBMISSION_SIZE, True, p.evaluate.fid_real_images)
    extractor = fid.load_extractor(device, p.evaluate.fid_extractor)
    features = fid.inception_features(real, extractor, device=device)
    with atomic_path(paths.fid_reference) as out:
        out.mkdir()
        np.save(out / "features.npy", features.astype(np.float32))
        write_json(
            out / "info.json",
            {"extractor": extractor[1], "n_images": len(real), "images": "data/ddpm/raw, first by name, 64×64"},
        )
    print(f"ddpm-fid-reference: {len(real)} training images with {extractor[1]}")
    return paths.fid_reference


def load(paths: config.Paths) -> tuple[np.ndarray, dict]:
    return np.load(paths.fid_reference / "features.npy").astype(np.float64), read_json(
        paths.fid_reference / "info.json"
    )


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
