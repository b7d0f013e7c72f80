"""Synthetic Pokémon-like sprites in the course's exact format, for the `sample` data source.

Each sprite is a left-right symmetric creature on a white background: a body and
a head built from ellipses, optional ears, feet and a tail, shaded from one
colour family, outlined, with eyes and a lighter belly. The bottom 40% (what a
model must complete) follows from the top 60%: the same colours, the continued
silhouette, the mirror symmetry — so a model has to learn shapes and colour
regions to complete it, and noise or copied rows look wrong to the classifier.
"""

from __future__ import annotations

import colorsys

import numpy as np

from stages.pokemon.data import N_COLORS, SIDE

N_HUES = 33
N_SHADES = 5  # dark .. very light
OUTLINE = 1


def palette() -> np.ndarray:
    """167 colours: 0 white (background), 1 near-black (outline), then 33 hues × 5 shades."""
    colors = [(255, 255, 255), (48, 48, 48)]
    shades = [(0.85, 0.35), (0.8, 0.55), (0.7, 0.75), (0.45, 0.9), (0.2, 0.97)]  # (saturation, value)
    for h in range(N_HUES):
        for s, v in shades:
            r, g, b = colorsys.hsv_to_rgb(h / N_HUES, s, v)
            colors.append((round(r * 255), round(g * 255), round(b * 255)))
    assert len(colors) == N_COLORS
    return np.asarray(colors, dtype=np.uint8)


def color(hue: int, shade: int) -> int:
    return 2 + hue * N_SHADES + shade


def _ellipse(cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def sprite(rng: np.random.Generator) -> np.ndarray:
    """One 20×20 sprite as 400 palette indices."""
    cx = 9.5 + rng.choice([-1.0, 0.0, 0.0, 1.0])
    body_hue, accent_hue = rng.integers(N_HUES), rng.integers(N_HUES)
    head_cy, head_ry, head_rx = rng.uniform(4.5, 7.0), rng.uniform(3.0, 4.2), rng.uniform(3.5, 5.5)
    body_cy, body_ry, body_rx = rng.uniform(11.5, 13.5), rng.uniform(4.0, 5.8), rng.uniform(3.5, 7.0)

    head = _ellipse(head_cy, cx, head_ry, head_rx)
    body = _ellipse(body_cy, cx, body_ry, body_rx)
    mask = head | body
    parts = {"accent": np.zeros_like(mask)}
    if rng.random() < 0.7:  # ears, mirrored
        dx, ry = rng.uniform(1.5, 3.5), rng.uniform(1.5, 3.0)
        ears = _ellipse(head_cy - head_ry, cx - dx, ry, 1.0) | _ellipse(head_cy - head_ry, cx + dx, ry, 1.0)
        parts["accent"] |= ears & ~head
        mask |= ears
    if rng.random() < 0.8:  # feet, mirrored
        dx = rng.uniform(1.5, body_rx - 0.5)
        feet = _ellipse(body_cy + body_ry, cx - dx, 1.3, 1.5) | _ellipse(body_cy + body_ry, cx + dx, 1.3, 1.5)
        parts["accent"] |= feet & ~body
        mask |= feet
    if rng.random() < 0.4:  # a tail on one side breaks the symmetry a little
        side = rng.choice([-1, 1])
        tail = _ellipse(body_cy - 1, cx + side * (body_rx + 1.5), rng.uniform(1.5, 3.0), 1.5)
        parts["accent"] |= tail & ~body
        mask |= tail

    y, x = np.mgrid[0:SIDE, 0:SIDE]
    image = np.zeros((SIDE, SIDE), dtype=np.int64)
    image[mask] = color(body_hue, 2)
    lit = (y - body_cy) * 0.6 + (x - cx) * 0.4 < -1.5  # light from the top left
    image[mask & lit] = color(body_hue, 3)
    shadow = (y - body_cy) * 0.6 + (x - cx) * 0.4 > 2.0
    image[mask & shadow] = color(body_hue, 1)
    belly = _ellipse(body_cy + 0.5, cx, body_ry * 0.55, body_rx * 0.5) & body
    image[belly] = color(body_hue, 4)
    accent = parts["accent"] & mask
    image[accent] = color(accent_hue, 2)

    # outline: body pixels that touch the background
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    image[mask & ~interior] = OUTLINE if rng.random() < 0.7 else color(body_hue, 0)

    # eyes, mirrored, with a highlight above
    ey = int(round(head_cy))
    ex = max(1.0, head_rx * rng.uniform(0.35, 0.55))
    for col in (int(np.floor(cx - ex)), int(np.ceil(cx + ex))):
        if 0 <= col < SIDE and mask[ey, col]:
            image[ey, col] = OUTLINE
            if ey > 0 and mask[ey - 1, col]:
                image[ey - 1, col] = color(body_hue, 4)
    return image.reshape(-1)


def generate(n_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (n, 400), palette (167, 3)) — deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    return np.stack([sprite(rng) for _ in range(n_images)]), palette()
