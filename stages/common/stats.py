"""Uncertainty of a measured score: the paired bootstrap over test items. Imports only numpy.

Two models scored on the same n test images give two 0/1 vectors a and b (1 = image right). Their accuracy
ratio r = mean(a) / mean(b) is one draw of what the same models would score on another n images from the same
source. The paired bootstrap draws n image indices with replacement, B times, and recomputes r on each draw
(the same indices for both models: their errors on one image are correlated, and pairing keeps that); the
central `level` share of the B ratios is the interval. A fixed-seed numpy Generator (PCG64) makes the
indices, and the statistics are counts over integers: the interval is the same on every CPU.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SEED = 20240  # the resampling's own seed: an interval is a property of the data, not of a run's seed


def paired_ratio_interval(a: np.ndarray, b: np.ndarray, resamples: int, level: float) -> dict[str, float] | None:
    """Paired-bootstrap interval of mean(a) / mean(b) for per-item scores a, b (same items, same order).

    Returns {"low", "high", "std"}: the percentile interval at `level` and the bootstrap standard deviation
    of the ratio, or None when b is never right (no ratio). Draws where mean(b) is 0 have no ratio and are
    left out.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired scores must be two equal, non-empty vectors, got {a.shape} and {b.shape}")
    rng = np.random.Generator(np.random.PCG64(BOOTSTRAP_SEED))
    ratios = []
    for chunk in np.array_split(np.arange(resamples), max(1, resamples // 500)):
        idx = rng.integers(0, len(a), size=(len(chunk), len(a)))  # (chunk, n): one resample per row
        num, den = a[idx].sum(axis=1), b[idx].sum(axis=1)  # integer counts: exact everywhere
        keep = den > 0
        ratios.append(num[keep] / den[keep])
    r = np.concatenate(ratios)
    if len(r) == 0:
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(r, [tail, 100 - tail])
    return {"low": float(low), "high": float(high), "std": float(r.std())}
