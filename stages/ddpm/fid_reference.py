"""ddpm-fid-reference: Inception features of the real training images at 64×64, computed once.

A stage of its own so that a new model or sampler does not pay for the real side
of FID again. The reference is the first `evaluate.fid_real_images` images of
data/ddpm/raw (name order), cut as ddpm-prepare cuts them (`prepare.celeba_crop` for aligned
CelebA images, then the centre square) and resized to 64×64 like the submission.
"""

from __future__ import annotations

from pathlib import Path

from stages.common import fid
from stages.common.cli import main
from stages.common.runtime import setup
from stages.ddpm import config
from stages.ddpm.images import read_folder


def run(p: config.DdpmParams, common: config.CommonParams, paths: config.Paths) -> Path:
    device = str(setup(p.seed, common.device, common.threads, common.kernels))
    real = read_folder(paths.raw, config.SUBMISSION_SIZE, True, p.evaluate.fid_real_images, p.prepare.celeba_crop)
    extractor = fid.load_extractor(device, p.evaluate.fid_extractor)
    fid.save_reference(paths.fid_reference, real, extractor, device, "data/ddpm/raw, first by name, 64×64")
    print(f"ddpm-fid-reference: {len(real)} training images with {extractor[1]}")
    return paths.fid_reference


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
