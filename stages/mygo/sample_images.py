"""The `sample` data set: 10 'characters' drawn as coloured figures, in the course's folder layout.

Each character is a combination of hair colour, hair style, outfit colour and an
accessory; no single attribute identifies a character (hair colours, styles and
outfits are each shared by two or three of them), so a model has to combine
shape and colour. Every image varies the pose (mirror, tilt), scale, position,
background (gradient plus clutter in the same palette), occlusion, lighting and
image size, so augmentation and model choice both matter.

As with photos collected by hand, the training split is biased: figures mostly
face right, fill most of the frame and are seldom blurred, while validation and
test images cover the full range of mirror poses, scales and positions. A model
trained without flips and crops learns the bias; augmentation undoes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CANVAS = 128  # figures are drawn at 128×128 and downsampled (antialiasing)
SKIN = (250, 218, 196)


@dataclasses.dataclass(frozen=True)
class Character:
    name: str
    hair: tuple[int, int, int]
    style: str  # short | long | twin | bun
    outfit: tuple[int, int, int]
    accessory: str  # none | ribbon | star | ears | hat | band
    accent: tuple[int, int, int]


BLUE, PINK, BROWN, BLACK, GREEN = (88, 112, 200), (240, 146, 188), (112, 72, 44), (36, 34, 44), (104, 180, 112)
NAVY, ORANGE, DARK, RED, PALE = (42, 58, 112), (230, 122, 40), (24, 22, 28), (156, 38, 44), (206, 206, 232)

CHARACTERS = (
    Character("tomori", BLUE, "short", NAVY, "none", NAVY),
    Character("anon", PINK, "long", NAVY, "ribbon", (250, 250, 250)),
    Character("rana", (236, 236, 236), "short", ORANGE, "ears", (236, 236, 236)),
    Character("soyo", BROWN, "long", NAVY, "band", PALE),
    Character("taki", BLACK, "long", RED, "none", RED),
    Character("sakiko", BLUE, "twin", DARK, "ribbon", (250, 250, 250)),
    Character("uika", PINK, "bun", PALE, "star", (250, 200, 40)),
    Character("mutsumi", GREEN, "long", DARK, "none", DARK),
    Character("umiri", (126, 72, 156), "short", DARK, "band", RED),
    Character("nyamu", PINK, "short", ORANGE, "star", (250, 200, 40)),
)
CLASSES = tuple(c.name for c in CHARACTERS)
PALETTE = [c.hair for c in CHARACTERS] + [c.outfit for c in CHARACTERS] + [SKIN]


def draw_figure(ch: Character, rng: np.random.Generator) -> Image.Image:
    """The character on a transparent CANVAS×CANVAS RGBA image, facing right (accessory on its right)."""
    img = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    cx, cy, r = 64, 46, 24  # head centre and radius
    jitter = lambda: int(rng.integers(-3, 4))
    # 1. hair behind the head
    if ch.style == "long":
        d.rounded_rectangle([cx - r - 6, cy - 6, cx + r + 6, 108 + jitter()], 10, fill=ch.hair)
    elif ch.style == "twin":
        for side in (-1, 1):
            x = cx + side * (r + 8)
            d.ellipse([x - 9, cy - 4, x + 9, 104 + jitter()], fill=ch.hair)
    elif ch.style == "bun":
        d.ellipse([cx - 14, cy - r - 22, cx + 14, cy - r + 6], fill=ch.hair)
    # 2. body, head, face
    d.polygon([(cx - 18, 70), (cx + 18, 70), (cx + 34 + jitter(), 127), (cx - 34 + jitter(), 127)], fill=ch.outfit)
    d.rectangle([cx - 6, cy + r - 4, cx + 6, 72], fill=SKIN)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=SKIN)
    for ex in (cx - 9, cx + 9):
        d.ellipse([ex - 3, cy + 2, ex + 3, cy + 8], fill=(40, 40, 60))
    # 3. hair cap and fringe
    d.chord([cx - r - 3, cy - r - 4, cx + r + 3, cy + r], 180, 360, fill=ch.hair)
    d.polygon(
        [(cx - r - 2, cy), (cx - 6, cy - 10), (cx + r + 2, cy - 2), (cx + r, cy - 14), (cx - r, cy - 14)], fill=ch.hair
    )
    # 4. accessory, on the figure's right so that a mirror image is a different pose
    top = cy - r - 4
    if ch.accessory == "ribbon":
        x, y = cx + 16, top + 4
        d.polygon([(x, y), (x + 14, y - 9), (x + 14, y + 9)], fill=ch.accent)
        d.polygon([(x, y), (x - 14, y - 9), (x - 14, y + 9)], fill=ch.accent)
    elif ch.accessory == "star":
        x, y = cx + 20, top + 6
        pts = [(x + (12 if i % 2 == 0 else 5) * np.sin(i * np.pi / 5), y - (12 if i % 2 == 0 else 5) * np.cos(i * np.pi / 5))
               for i in range(10)]  # fmt: skip
        d.polygon(pts, fill=ch.accent)
    elif ch.accessory == "ears":
        for x in (cx - 16, cx + 16):
            d.polygon([(x - 10, top + 8), (x + 10, top + 8), (x, top - 14)], fill=ch.accent)
    elif ch.accessory == "band":
        d.arc([cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2], 200, 340, fill=ch.accent, width=6)
    return img


def background(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A two-colour gradient with clutter shapes, some in the characters' own colours."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, w)[None, :, None]
    grad = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).astype(np.uint8)
    img = Image.fromarray(grad)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 9))):
        color = (
            PALETTE[rng.integers(len(PALETTE))]
            if rng.random() < 0.5
            else tuple(int(v) for v in rng.integers(0, 256, 3))
        )
        x0, y0 = rng.integers(-w // 4, w), rng.integers(-h // 4, h)
        x1, y1 = x0 + rng.integers(w // 8, w // 2 + 1), y0 + rng.integers(h // 8, h // 2 + 1)
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([int(x0), int(y0), int(x1), int(y1)], fill=tuple(color))
    return img


def render(
    ch: Character, rng: np.random.Generator, biased: bool = False, min_side: int = 40, max_side: int = 100
) -> Image.Image:
    """One photo-like RGB image of `ch`: random size, pose, scale, position, background, occlusion, lighting.

    biased: the training split's narrower range (mostly facing right, large, centred).
    """
    w, h = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
    img = background(w, h, rng)
    fig = draw_figure(ch, rng)
    if rng.random() < (0.1 if biased else 0.5):
        fig = fig.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    fig = fig.rotate(float(rng.uniform(-30, 30)), resample=Image.Resampling.BILINEAR)
    side = max(8, int(min(w, h) * (rng.uniform(0.85, 1.1) if biased else rng.uniform(0.5, 1.1))))
    fig = fig.resize((side, side), Image.Resampling.LANCZOS)
    x = int(rng.integers(-side // 5, max(1, w - side + side // 5)))
    y = int(rng.integers(-side // 8, max(1, h - side + side // 4)))
    img.paste(fig, (x, y), fig)
    if rng.random() < 0.5:  # occluder over part of the figure
        d = ImageDraw.Draw(img)
        ow, oh = int(side * rng.uniform(0.2, 0.5)), int(side * rng.uniform(0.2, 0.5))
        ox, oy = x + int(rng.integers(0, max(1, side - ow))), y + int(rng.integers(0, max(1, side - oh)))
        d.rectangle([ox, oy, ox + ow, oy + oh], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr * rng.uniform(0.6, 1.25) + rng.uniform(-25, 25, 3) + rng.normal(0, 6, arr.shape)  # light, tint, noise
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.2))))
    return img


def write_dataset(out: Path, seed: int, train_per_class: int, valid_per_class: int, n_test: int) -> None:
    """train/<class>/*.jpg, valid/<class>/*.jpg and test/*.jpg (unlabelled), deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class), ("valid", valid_per_class)):
        for ci, ch in enumerate(CHARACTERS):
            folder = out / split / f"{ci}_{ch.name}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                render(ch, rng, biased=split == "train").save(folder / f"{ch.name}_{i:04d}.jpg", quality=90)
    (out / "test").mkdir(parents=True)
    for i in range(n_test):
        render(CHARACTERS[int(rng.integers(len(CHARACTERS)))], rng).save(out / "test" / f"{i:04d}.jpg", quality=90)
