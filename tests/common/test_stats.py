"""The paired bootstrap interval: right on cases with a known answer, the same numbers on every CPU."""

from __future__ import annotations

import numpy as np

from stages.common.stats import paired_ratio_interval


def test_identical_models_give_a_point_interval():
    a = np.array([1, 0, 1, 1, 0] * 20)
    ci = paired_ratio_interval(a, a, 1000, 0.95)
    assert ci == {"low": 1.0, "high": 1.0, "std": 0.0}


def test_interval_contains_the_ratio_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    widths = []
    for n in (200, 3200):
        a, b = rng.random(n) < 0.3, rng.random(n) < 0.3
        ci = paired_ratio_interval(a, b, 2000, 0.95)
        ratio = a.mean() / b.mean()
        assert ci["low"] < ratio < ci["high"]
        widths.append(ci["high"] - ci["low"])
    assert widths[1] < widths[0] / 2.5  # about 1/sqrt(16) = 1/4 of the width at 16× the images


def test_pairing_narrows_the_interval_of_correlated_models():
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.4
    b = a.copy()
    b[rng.choice(400, 20, replace=False)] ^= True  # b differs from a on 20 images only
    paired = paired_ratio_interval(a, b, 2000, 0.95)
    unpaired = paired_ratio_interval(a, rng.permutation(b), 2000, 0.95)
    assert paired["high"] - paired["low"] < (unpaired["high"] - unpaired["low"]) / 2


def test_fixed_values_on_every_cpu():
    # integer counts, a fixed PCG64 stream and a percentile: no floating-point reduction whose order could differ
    a = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0] * 10)
    b = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 0] * 10)
    ci = paired_ratio_interval(a, b, 1000, 0.9)
    # the ends are resampled ratios of integer counts, exactly (checked native, under qemu -cpu Haswell and
    # -cpu EPYC-Rome: the same three floats, std included)
    assert ci["low"] == 55 / 54
    assert ci["high"] == 61 / 43


def test_no_ratio_when_the_reference_is_never_right():
    assert paired_ratio_interval(np.ones(10), np.zeros(10), 100, 0.95) is None
