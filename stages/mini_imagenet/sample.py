"""The `sample` source: a small, deterministic stand-in for mini-ImageNet in the course's exact layout.

Ten classes. In six, SHAPE or texture decides (circle, square, triangle, cross, ring, stripes) and the
colours are random, with the object brighter or darker than the background in EVERY channel, so any
single channel still shows the shape. In four, COLOUR decides (a random ellipse that is red, green,
blue or yellow on grey): one channel alone cannot tell them all apart, so a model that loses channels
loses something, and a channel-robust model can still do well on the shape classes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring", "stripes")
COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0)}
CLASSES = SHAPES + tuple(COLOURS)
SUPERSAMPLE = 4


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[list[tuple[float, float]]]:
    def rot(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]

    if kind == "square":
        h = r * 0.8
        return [rot([(-h, -h), (h, -h), (h, h), (-h, h)])]
    if kind == "triangle":
        return [rot([(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)])]
    if kind == "cross":
        w = r * 0.3
        return [rot([(-r, -w), (r, -w), (r, w), (-r, w)]), rot([(-w, -r), (w, -r), (w, r), (-w, r)])]
    raise ValueError(kind)


def mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float (size, size) coverage mask of one object, anti-aliased by supersampling."""
    from PIL import Image, ImageDraw

    big = size * SUPERSAMPLE
    r = rng.uniform(0.22, 0.36) * big
    cx, cy = rng.uniform(r, big - r), rng.uniform(r, big - r)
    angle = rng.uniform(0, 2 * math.pi)
    im = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(im)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        inner = r * 0.55
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif kind == "stripes":
        period = big / rng.uniform(5, 8)
        h = r * 0.9
        y = cy - h
        while y < cy + h:
            draw.rectangle([cx - h, y, cx + h, min(y + period / 2, cy + h)], fill=255)
            y += period
    elif kind == "ellipse":
        a, b = r, r * rng.uniform(0.45, 0.8)
        ell = Image.new("L", (big, big), 0)
        ImageDraw.Draw(ell).ellipse([big / 2 - a, big / 2 - b, big / 2 + a, big / 2 + b], fill=255)
        ell = ell.rotate(math.degrees(angle), resample=Image.Resampling.BILINEAR)
        im.paste(ell, (int(cx - big / 2), int(cy - big / 2)))
    else:
        for poly in _polygon(kind, cx, cy, r, angle):
            draw.polygon(poly, fill=255)
    small = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def render(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 (size, size, 3) image of class `label`."""
    name = CLASSES[label]
    if name in SHAPES:
        m = mask(name, size, rng)
        dark, bright = rng.uniform(10, 100, 3), rng.uniform(150, 245, 3)  # contrast in every channel
        bg, fg = (dark, bright) if rng.random() < 0.5 else (bright, dark)
    else:
        m = mask("ellipse", size, rng)
        grey = rng.uniform(90, 150)
        bg = np.full(3, grey)
        hot = np.asarray(COLOURS[name], dtype=np.float64)
        fg = hot * rng.uniform(190, 245) + (1 - hot) * rng.uniform(10, 60)
    image = bg[None, None, :] * (1 - m[..., None]) + fg[None, None, :] * m[..., None]
    image += rng.normal(0, 10, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write(out: Path, per_split: dict[str, int], size: int, seed: int) -> None:
    """images/<class>/<class>_<split>_<i>.jpg plus train.txt, val.txt, test.txt and classes.txt under `out`."""
    from PIL import Image

    for name in CLASSES:
        (out / "images" / name).mkdir(parents=True, exist_ok=True)
    for s, (split, n) in enumerate(per_split.items()):
        lines = []
        for label, name in enumerate(CLASSES):
            rng = np.random.default_rng([seed, s, label])
            for i in range(n):
                rel = f"images/{name}/{name}_{split}_{i:04d}.jpg"
                Image.fromarray(render(label, size, rng)).save(out / rel, quality=95, subsampling=0)
                lines.append(f"{rel} {label}")
        # Interleave the classes (the course's lists are not sorted by class either), deterministically.
        order = np.random.default_rng([seed, s, 99]).permutation(len(lines))
        (out / f"{split}.txt").write_text("".join(lines[i] + "\n" for i in order), encoding="utf-8")
    (out / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(CLASSES)), encoding="utf-8")
