"""Matplotlib helpers (Agg backend: PNGs render offline, where `dvc plots show` HTML would not)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.io import atomic_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_plot(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    x: str,
    ys: Sequence[str],
    title: str = "",
    ylabel: str = "",
) -> None:
    """One line per column in `ys` against column `x` of `rows` (the same rows DVC plots read)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for y in ys:
        points = [(r[x], r[y]) for r in rows if r.get(y) not in (None, "")]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 30 else None, label=y)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def image_grid(
    path: str | Path,
    images: Sequence[np.ndarray],
    ncols: int,
    titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    scale: float = 1.2,
    suptitle: str = "",
) -> None:
    """Images (H×W×3 uint8) in a grid, row-major; optional per-image or per-column titles."""
    plt = _pyplot()
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=7)
            elif col_titles and i < ncols:
                ax.set_title(col_titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    _save(fig, path)


def confusion_matrix_plot(path: str | Path, matrix: np.ndarray, labels: Sequence[str], title: str = "") -> None:
    plt = _pyplot()
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_title(title)
    _save(fig, path)


def _save(fig: Any, path: str | Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
