"""Procedural face-like 64×64 images: the `sample` source of ddpm-download (a stand-in for CelebA 64×64).

Each face: a plain background with a soft vertical gradient, hair (a large ellipse
behind the head, optionally with a fringe), an elliptical head in a skin tone,
two eyes (white, iris, pupil) with brows, a nose shadow and a mouth. Shapes,
colours and positions vary per image; drawn at 4× and downsampled, so edges are
smooth like a photograph's rather than aliased.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 64
SCALE = 4  # drawn at 256×256, downsampled with a box filter

SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 95], [141, 85, 54], [92, 58, 40]])
HAIR = np.array(
    [[20, 16, 14], [60, 40, 26], [110, 75, 40], [180, 140, 80], [230, 205, 150], [140, 60, 30], [150, 150, 150]]
)
IRIS = np.array([[60, 40, 25], [40, 90, 160], [60, 120, 70], [90, 70, 50]])
LIPS = np.array([[190, 80, 80], [160, 60, 70], [210, 110, 110], [140, 70, 60]])


def _jitter(rng: np.random.Generator, color: np.ndarray, amount: float) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.clip(color + rng.normal(0, amount, 3), 0, 255))


def face(rng: np.random.Generator) -> np.ndarray:
    """One 64×64×3 uint8 face."""
    s = SIZE * SCALE
    top = rng.uniform(40, 230, 3)
    bottom = np.clip(top + rng.normal(0, 25, 3), 0, 255)
    ramp = np.linspace(0, 1, s)[:, None, None]
    background = (top * (1 - ramp) + bottom * ramp).repeat(s, axis=1).astype(np.uint8)
    img = Image.fromarray(background)
    draw = ImageDraw.Draw(img)

    cx = s / 2 + rng.normal(0, 0.04) * s
    cy = s / 2 + rng.normal(0.04, 0.04) * s
    hw, hh = rng.uniform(0.21, 0.28) * s, rng.uniform(0.28, 0.35) * s  # head half-width/height
    skin = _jitter(rng, SKIN[rng.integers(len(SKIN))], 8)
    hair = _jitter(rng, HAIR[rng.integers(len(HAIR))], 10)

    # Hair behind the head: short (just the crown) or long (down to the shoulders).
    long_hair = rng.random() < 0.5
    hx, hy_top = hw * rng.uniform(1.1, 1.35), cy - hh * rng.uniform(1.08, 1.25)
    hy_bottom = cy + hh * (rng.uniform(0.8, 1.3) if long_hair else rng.uniform(-0.1, 0.3))
    draw.ellipse([cx - hx, hy_top, cx + hx, hy_bottom + (hh if long_hair else 0)], fill=hair)
    # Neck and shoulders.
    shirt = _jitter(rng, rng.uniform(30, 220, 3), 0)
    draw.rectangle([cx - hw * 0.35, cy + hh * 0.6, cx + hw * 0.35, cy + hh * 1.3], fill=skin)
    draw.ellipse([cx - hw * 1.9, cy + hh * 1.15, cx + hw * 1.9, cy + hh * 2.6], fill=shirt)
    # Head.
    draw.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=skin)
    # Fringe: a hair cap over the top of the head.
    if rng.random() < 0.7:
        fringe = cy - hh * rng.uniform(0.35, 0.6)
        draw.chord(
            [cx - hw * 1.05, cy - hh * 1.1, cx + hw * 1.05, fringe + (fringe - cy + hh * 1.1)], 180, 360, fill=hair
        )

    # Eyes, brows.
    ey = cy - hh * rng.uniform(0.05, 0.2)
    dx = hw * rng.uniform(0.38, 0.5)
    ew, eh = hw * rng.uniform(0.17, 0.24), hh * rng.uniform(0.06, 0.1)
    iris = _jitter(rng, IRIS[rng.integers(len(IRIS))], 10)
    look = rng.normal(0, 0.25) * ew
    for side in (-1, 1):
        ex = cx + side * dx
        draw.ellipse([ex - ew, ey - eh, ex + ew, ey + eh], fill=(245, 245, 240))
        r = eh * 0.95
        draw.ellipse([ex + look - r, ey - r, ex + look + r, ey + r], fill=iris)
        draw.ellipse([ex + look - r / 2, ey - r / 2, ex + look + r / 2, ey + r / 2], fill=(10, 10, 10))
        by = ey - eh * rng.uniform(2.0, 2.8)
        draw.line(
            [ex - ew * 1.1, by + eh * 0.3 * side * 0, ex + ew * 1.1, by],
            fill=tuple(int(c * 0.7) for c in hair),
            width=max(2, int(eh * 0.7)),
        )
    # Nose: a soft shadow.
    shade = tuple(int(c * 0.82) for c in skin)
    ny = cy + hh * rng.uniform(0.12, 0.22)
    draw.ellipse([cx - hw * 0.1, ny - hh * 0.05, cx + hw * 0.1, ny + hh * 0.05], fill=shade)
    # Mouth: a lip ellipse, sometimes open (dark inside).
    my = cy + hh * rng.uniform(0.45, 0.58)
    mw, mh = hw * rng.uniform(0.25, 0.42), hh * rng.uniform(0.04, 0.1)
    draw.ellipse([cx - mw, my - mh, cx + mw, my + mh], fill=_jitter(rng, LIPS[rng.integers(len(LIPS))], 10))
    if rng.random() < 0.4:
        draw.ellipse([cx - mw * 0.7, my - mh * 0.45, cx + mw * 0.7, my + mh * 0.45], fill=(60, 20, 25))

    img = img.filter(ImageFilter.GaussianBlur(SCALE * 0.4)).resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


def generate(n: int, seed: int = 0) -> np.ndarray:
    """`n` faces, N×64×64×3 uint8; the same seed gives the same images."""
    rng = np.random.default_rng(seed)
    return np.stack([face(rng) for _ in range(n)]) if n else np.zeros((0, SIZE, SIZE, 3), np.uint8)
