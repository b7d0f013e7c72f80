"""Combining logits (NumPy only, so evaluate and package need not import torch).

TTA: the mean of log-softmax over the views of one model.
Ensemble: `logit_sum` adds the members' (TTA-averaged) log-probabilities;
`majority_vote` counts each member's top class, ties broken by the logit sum.
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def tta(views: np.ndarray) -> np.ndarray:
    """(V, N, C) logits of V views -> (N, C) mean log-probabilities."""
    return log_softmax(views.astype(np.float64)).mean(0)


def combine(members: list[np.ndarray], method: str) -> np.ndarray:
    """(N, C) scores of each member -> (N,) predicted class."""
    stacked = np.stack([log_softmax(m.astype(np.float64)) for m in members])  # (M, N, C)
    total = stacked.sum(0)
    if method == "logit_sum":
        return total.argmax(-1)
    if method == "majority_vote":
        n_classes = total.shape[-1]
        votes = np.stack([np.bincount(row, minlength=n_classes) for row in stacked.argmax(-1).T])  # (N, C)
        # most votes first, then the larger logit sum among the tied classes
        scaled = votes * (np.abs(total).max() * 2 + 1) + total
        return scaled.argmax(-1)
    raise ValueError(f"unknown ensemble method '{method}'")


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean()) if len(labels) else 0.0
