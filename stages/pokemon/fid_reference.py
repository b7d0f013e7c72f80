"""pokemon-fid-reference: Inception features of the real train sprites, computed once.

A stage of its own so that experiments which change only the model do not pay
for the real side of FID again.
"""

from __future__ import annotations

from pathlib import Path

from stages.common import fid
from stages.common.cli import main
from stages.common.runtime import setup
from stages.pokemon import config
from stages.pokemon.data import load_prepared, render


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> Path:
    device = str(setup(p.seed, common.device, common.threads, common.kernels))
    data = load_prepared(paths.prepared)
    real = data["train"][: p.evaluate.fid_reference_images or None]
    extractor = fid.load_extractor(device, p.evaluate.fid_extractor)
    fid.save_reference(paths.fid_reference, render(real, data["palette"]), extractor, device, "train split")
    print(f"pokemon-fid-reference: {len(real)} train images with {extractor[1]}")
    return paths.fid_reference


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
