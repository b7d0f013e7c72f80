"""ddpm-prepare: decode data/ddpm/raw once into one compact array (uint8 N×S×S×3, S = prepare.image_size).

One `images.npy` instead of thousands of loose files as a DVC output. `load()`
returns it normalised to [-1, 1] as N×3×S×S float32, which is what training reads;
horizontal flips are a train-time option (`ddpm.train.hflip`). Aligned CelebA images (178×218) are cut
to their centre `prepare.celeba_crop`² first, then every image is centre-squared and resized.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import atomic_path, write_json
from stages.ddpm import config
from stages.ddpm.images import read_folder


def run(p: config.DdpmParams, common: config.CommonParams, paths: config.Paths) -> Path:
    pp = p.prepare
    images = read_folder(paths.raw, pp.image_size, pp.resize, pp.max_images, pp.celeba_crop)
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        np.save(out / "images.npy", images)
        write_json(out / "info.json", {"images": len(images), "size": p.prepare.image_size})
    print(f"ddpm-prepare: {len(images)} images at {p.prepare.image_size}×{p.prepare.image_size} -> {paths.prepared}")
    return paths.prepared


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
