"""The prepared test set: clean images, validation images and one fixed noise draw per (image, σ).

Arrays are folders of `.npy` files (not `.npz`, whose zip headers carry the time of writing),
so the same params give byte-identical outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.io import DataError, atomic_path


def noise_draw(seed: int, index: int, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    """The standard-normal noise of image `index` at σ: its own seed, so every method and run sees the same."""
    rng = np.random.default_rng([seed, index, round(sigma * 1000)])
    return rng.standard_normal(shape, dtype=np.float32)


def add_noise(clean: np.ndarray, sigmas: list[float], seed: int) -> np.ndarray:
    """(M, H, W, 3) uint8 -> (S, M, H, W, 3) float32 noisy images on the 0–255 scale (not clipped)."""
    out = np.empty((len(sigmas), *clean.shape), dtype=np.float32)
    for s, sigma in enumerate(sigmas):
        for i, image in enumerate(clean):
            out[s, i] = image.astype(np.float32) + np.float32(sigma) * noise_draw(seed, i, sigma, image.shape)
    return out


def save_arrays(folder: Path, **arrays: np.ndarray) -> None:
    """Each array as `<name>.npy` in `folder`, replaced as a whole."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.asarray(array))


def load_arrays(folder: Path, stage: str) -> dict[str, np.ndarray]:
    files = sorted(folder.glob("*.npy")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: not found or empty; run {stage}")
    return {f.stem: np.load(f) for f in files}


def load(folder: Path) -> dict[str, np.ndarray]:
    """clean (M, H, W, 3) uint8: test images first, then validation; noisy (S, M, H, W, 3) float32; sigmas; n_test."""
    return load_arrays(folder, "dip-ddpm-prepare")
