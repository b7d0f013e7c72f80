"""PSNR and SSIM, both from scikit-image (`skimage.metrics`), on uint8 H×W×3 images (data range 255)."""

from __future__ import annotations

import numpy as np


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of one H×W×3 image against its clean original."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(clean, estimate, data_range=255))


def ssim(clean: np.ndarray, estimate: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: 7×7 uniform window, over the 3 channels, mean)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(clean, estimate, data_range=255, channel_axis=-1))


def to_uint8(images01: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> (N, H, W, 3) uint8, as an image file would store them."""
    return (np.clip(images01, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


LIBRARY = "scikit-image (skimage.metrics: peak_signal_noise_ratio, structural_similarity; data range 255)"
