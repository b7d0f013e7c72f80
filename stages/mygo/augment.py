"""Augmentation from a param list (torchvision.transforms.v2), MixUp/CutMix, and the test-time views.

An augmentation is a short name with defaults, optionally with keyword overrides,
or any torchvision.transforms.v2 class by its own name:
  hflip, vflip, crop, resized_crop, rotate, affine, perspective, color_jitter,
  grayscale, blur, trivial_augment, rand_augment, auto_augment, augmix, erasing
  "resized_crop(scale=(0.3, 1.0))", "RandomPosterize(bits=4)"
They run on uint8 (C, H, W) tensors in list order; erasing runs last, on the
normalised float image.
"""

from __future__ import annotations

import ast
import re

import torch
from torchvision.transforms import v2

from stages.common.params import ParamsError

ALIASES: dict[str, tuple[str, dict]] = {
    "hflip": ("RandomHorizontalFlip", {}),
    "vflip": ("RandomVerticalFlip", {}),
    "crop": ("RandomCrop", {"padding": "size/8", "padding_mode": "reflect"}),
    "resized_crop": ("RandomResizedCrop", {"scale": (0.5, 1.0), "antialias": True}),
    "rotate": ("RandomRotation", {"degrees": 15}),
    "affine": ("RandomAffine", {"degrees": 15, "translate": (0.1, 0.1), "scale": (0.8, 1.2)}),
    "perspective": ("RandomPerspective", {"distortion_scale": 0.3}),
    "color_jitter": ("ColorJitter", {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3}),
    "grayscale": ("RandomGrayscale", {"p": 0.1}),
    "blur": ("GaussianBlur", {"kernel_size": 3}),
    "trivial_augment": ("TrivialAugmentWide", {}),
    "rand_augment": ("RandAugment", {}),
    "auto_augment": ("AutoAugment", {}),
    "augmix": ("AugMix", {}),
    "erasing": ("RandomErasing", {"p": 0.25}),
}
NEEDS_SIZE = {"RandomCrop", "RandomResizedCrop", "CenterCrop", "Resize"}
ON_FLOAT = {"RandomErasing"}
TTA_VIEWS = ("identity", "hflip", "shift_left", "shift_right", "shift_up", "shift_down", "zoom")
_SPEC = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def parse(spec: str, size: int) -> tuple[str, v2.Transform]:
    """'name' or 'name(k=v, ...)' -> (torchvision class name, transform)."""
    match = _SPEC.match(spec)
    if not match:
        raise ParamsError(f"augmentation {spec!r}: expected 'name' or 'name(key=value, ...)'")
    name, args = match.groups()
    cls_name, kwargs = ALIASES.get(name, (name, {}))
    kwargs = dict(kwargs)
    if args and args.strip():
        try:
            call = ast.parse(f"f({args})", mode="eval").body
            if call.args:
                raise ValueError("use key=value arguments")
            kwargs.update({kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})
        except (SyntaxError, ValueError) as err:
            raise ParamsError(f"augmentation {spec!r}: bad arguments ({err})") from None
    cls = getattr(v2, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
        raise ParamsError(
            f"unknown augmentation {name!r} (use one of {', '.join(ALIASES)} or a torchvision.transforms.v2 class)"
        )
    if kwargs.get("padding") == "size/8":
        kwargs["padding"] = max(1, size // 8)
    if cls_name in NEEDS_SIZE:
        kwargs.setdefault("size", size)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return cls_name, cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ParamsError(f"augmentation {spec!r}: {err}") from None


def train_transform(specs: list[str], size: int, mean: torch.Tensor, std: torch.Tensor) -> v2.Compose:
    """uint8 (3, H, W) -> normalised float (3, size, size), with the augmentations in `specs`."""
    parsed = [parse(s, size) for s in specs]
    on_uint8 = [t for name, t in parsed if name not in ON_FLOAT]
    on_float = [t for name, t in parsed if name in ON_FLOAT]
    return v2.Compose([*on_uint8, v2.Resize((size, size), antialias=True), *to_float(mean, std), *on_float])


def eval_transform(size: int, mean: torch.Tensor, std: torch.Tensor) -> v2.Compose:
    return v2.Compose([v2.Resize((size, size), antialias=True), *to_float(mean, std)])


def to_float(mean: torch.Tensor, std: torch.Tensor) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean.tolist(), std.tolist())]


def batch_mix(num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> v2.Transform | None:
    """MixUp and/or CutMix on a whole batch (each batch picks one when both are on); None when off."""
    mixes = []
    if mixup_alpha > 0:
        mixes.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixes.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


def check_views(views: list[str]) -> list[str]:
    """The TTA views to compute: always 'identity' first (the single-view score), then the others once each."""
    unknown = [v for v in views if v not in TTA_VIEWS]
    if unknown:
        raise ParamsError(f"unknown TTA view(s) {unknown} in mygo.predict.tta (use {', '.join(TTA_VIEWS)})")
    return ["identity"] + [v for v in dict.fromkeys(views) if v != "identity"]


def view(images: torch.Tensor, name: str) -> torch.Tensor:
    """A deterministic test-time view of a normalised batch (B, C, H, W)."""
    h, w = images.shape[-2:]
    s = max(1, min(h, w) // 16)  # shift by 1/16 of the side
    if name == "identity":
        return images
    if name == "hflip":
        return images.flip(-1)
    if name.startswith("shift_"):
        dx, dy = {"left": (-s, 0), "right": (s, 0), "up": (0, -s), "down": (0, s)}[name[6:]]
        padded = torch.nn.functional.pad(images, (s, s, s, s), mode="replicate")
        return padded[..., s - dy : s - dy + h, s - dx : s - dx + w]  # content moves by (dx, dy)
    if name == "zoom":  # centre 7/8, back to full size
        ch, cw = max(1, h * 7 // 8), max(1, w * 7 // 8)
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = images[..., top : top + ch, left : left + cw]
        return torch.nn.functional.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
    raise ParamsError(f"unknown TTA view '{name}'")
