"""dip-ddpm-prepare: the clean test and validation images and their noisy versions, one fixed draw per (image, σ).

Sources: `sample` — fresh faces from stages/ddpm/faces.py drawn with `data.sample_seed`
(the ddpm task trains its prior on faces drawn with seed 0, so these are never in its
training set), box-downsampled to `data.image_size`; `dir:<folder>` — images spread
evenly over the sorted file list (test images from the even positions, validation images
from the odd ones: CIFAR-10's `test/<class>/*.jpg` gives every class), after the first
`data.skip` files (those a prior trained on the first ddpm.prepare.max_images of the same
folder saw), cut as ddpm-prepare cuts (aligned CelebA to its centre `data.celeba_crop`²),
centre-cropped and resized. Noise: y = x + σ·ε on the 0–255 scale, float, not clipped.
"""

from __future__ import annotations

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError
from stages.common.sources import parse_source, require_dir
from stages.ddpm import faces
from stages.ddpm.images import celeba_crop, decode, list_files, square
from stages.dip_ddpm import config, data


def spread(n: int, total: int) -> list[int]:
    """`n` indices spread evenly over range(total)."""
    return [int(i) for i in np.linspace(0, total - 1, n).round()] if n > 1 else [0]


def clean_images(p: config.DipDdpmParams) -> np.ndarray:
    """(n_images + val_images, S, S, 3) uint8: the test images, then the validation images."""
    d = p.data
    source = parse_source(d.source, ("sample", "dir"), key="dip-ddpm.data.source")
    if source.kind == "sample":
        images = faces.generate(d.n_images + d.val_images, d.sample_seed)
    else:
        folder = require_dir(source.value)
        files = list_files(folder)[d.skip :]
        even, odd = files[0::2], files[1::2]
        if len(even) < d.n_images or len(odd) < d.val_images:
            after = f" after the first {d.skip}" if d.skip else ""
            raise DataError(
                f"{folder}: {len(files)} images{after}, need {d.n_images} test + {d.val_images} validation (×2)"
            )
        chosen = [even[i] for i in spread(d.n_images, len(even))] + [odd[i] for i in spread(d.val_images, len(odd))]
        images = [celeba_crop(decode(f), d.celeba_crop) for f in chosen]
    return np.stack([square(image, d.image_size) for image in images])


def run(p: config.DipDdpmParams, common: config.CommonParams, paths: config.Paths) -> dict:
    config.validate(p)
    clean = clean_images(p)
    noisy = data.add_noise(clean, p.noise.sigmas, p.noise.seed)
    data.save_arrays(
        paths.prepared, clean=clean, noisy=noisy, sigmas=np.asarray(p.noise.sigmas), n_test=np.asarray(p.data.n_images)
    )
    info = {"test_images": p.data.n_images, "val_images": p.data.val_images, "size": p.data.image_size,
            "sigmas": p.noise.sigmas, "source": p.data.source}  # fmt: skip
    print(
        f"dip-ddpm-prepare: {p.data.n_images} test + {p.data.val_images} validation images at "
        f"{p.data.image_size}×{p.data.image_size}, σ ∈ {p.noise.sigmas} -> {paths.prepared}"
    )
    return info


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
