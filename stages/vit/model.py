"""ViT from the shared blocks (stages/common/transformer.py): patch embedding, class token, learned
positions, a pre-LN Encoder, a linear head on the class token."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stages.common import checkpoint
from stages.common.io import DataError, atomic_path
from stages.common.transformer import Encoder, LearnedPositionalEncoding


class ViT(nn.Module):
    def __init__(
        self,
        n_classes: int = 10,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        use_sdpa: bool = False,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of patch size {patch_size}")
        self.hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        n_patches = (image_size // patch_size) ** 2
        # a linear map of each flattened patch, written as a strided convolution
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = LearnedPositionalEncoding(dim, n_patches + 1)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Encoder(depth, dim, heads, int(dim * mlp_ratio), dropout, norm_first=True, use_sdpa=use_sdpa)
        self.head = nn.Linear(dim, n_classes)
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) normalised -> (B, n_classes)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)  # (B, 1+N, C)
        x = self.encoder(self.dropout(self.pos(x)))
        return self.head(x[:, 0])


def save_model(model: ViT, path: str | Path, mean: list[float], std: list[float], classes: list[str]) -> None:
    """Tensors and plain values only: the file is read back with weights_only=True."""
    saved = {"hparams": dict(model.hparams), "state": model.state_dict(), "mean": list(mean), "std": list(std),
             "classes": list(classes)}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(checkpoint.plain(saved, str(path)), tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[ViT, dict]:
    """The saved model in eval mode on `device` and the saved dict; a file that is not a vit-train model
    (missing, empty, cut short, another file) is a DataError naming it."""
    saved = checkpoint.load(path, made_by="vit-train")
    try:
        model = ViT(**saved["hparams"])
        model.load_state_dict(saved["state"])
        if not {"mean", "std", "classes"} <= saved.keys():
            raise KeyError("mean, std, classes")
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{path}: not a model written by vit-train ({type(err).__name__}); run it again") from None
    return model.to(device).eval(), saved


def normalise(x_uint8: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """(B, 32, 32, 3) uint8 -> (B, 3, 32, 32) float, per-channel standardised."""
    x = x_uint8.permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def predict(model: ViT, x: torch.Tensor, mean, std, device, batch_size: int = 500) -> torch.Tensor:
    """Logits for uint8 images (N, 32, 32, 3)."""
    model.eval()
    out = [model(normalise(x[i : i + batch_size].to(device), mean, std)).float().cpu()
           for i in range(0, len(x), batch_size)]  # fmt: skip
    return torch.cat(out)
