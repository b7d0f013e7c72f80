"""Image helpers of the twolayer task: the training augmentation (the same for both models), resizing,
per-class limits and batched prediction. torch is imported inside the functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def limit_per_class(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` images of each class, in their original order (0 = all)."""
    if n <= 0:
        return x, y
    keep = np.concatenate([np.flatnonzero(y == k)[:n] for k in np.unique(y)])
    keep.sort()
    return x[keep], y[keep]


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, S, S, 3) -> uint8 (N, size, size, 3), antialiased bilinear; unchanged when S == size."""
    if size == 0 or images.shape[1] == size:
        return images
    import torch
    import torch.nn.functional as F

    out = []
    for i in range(0, len(images), 256):
        x = torch.as_tensor(images[i : i + 256]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def augment(images: np.ndarray, crop_pad: float, flip: bool, g: torch.Generator) -> np.ndarray:
    """Random crop after reflection padding by crop_pad·S pixels, and random horizontal flip; uint8 in, uint8 out."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(images).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8
    n, _, s, _ = x.shape
    pad = int(round(crop_pad * s))
    if pad:
        padded = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(torch.uint8)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
        x = torch.stack([padded[i, :, a : a + s, b : b + s] for i, (a, b) in enumerate(zip(dy, dx, strict=True))])
    if flip:
        mask = torch.rand(n, generator=g) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.permute(0, 2, 3, 1).numpy()


def predict(model: torch.nn.Module, images: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 200):
    """Logits (N, classes) as a float32 CPU tensor for uint8 (N, S, S, 3) images."""
    import torch

    from stages.mini_imagenet.data import to_tensor

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            out.append(model(to_tensor(images[i : i + batch_size]).to(device)).float().cpu())
    return torch.cat(out)
