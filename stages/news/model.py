"""The news classifier: token embedding + positional encoding → own Transformer encoder → pooling → linear.

Built only from stages/common/transformer.py (tensor primitives); no nn.Transformer*,
no nn.MultiheadAttention.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.common.io import DataError, atomic_path
from stages.common.transformer import Encoder, positional_encoding
from stages.news.config import ModelParams

PAD_ID, CLS_ID = 0, 2


class NewsClassifier(nn.Module):
    def __init__(self, m: ModelParams, vocab_size: int, n_classes: int):
        super().__init__()
        self.m = m
        self.embed = nn.Embedding(vocab_size, m.d_model, padding_idx=PAD_ID)
        self.pos = positional_encoding(m.pos_encoding, m.d_model, m.max_len)
        self.drop = nn.Dropout(m.dropout)
        self.encoder = Encoder(m.nlayers, m.d_model, m.nhead, m.d_hid, m.dropout, m.norm_first, m.attention == "sdpa")
        self.head = nn.Linear(m.d_model, n_classes)
        nn.init.normal_(self.embed.weight, std=m.d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[PAD_ID].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) int -> (B, n_classes) logits
        pad = ids == PAD_ID  # (B, T) True = padding; position 0 is always [CLS]
        x = self.embed(ids) * math.sqrt(self.m.d_model)  # (B, T, C)
        x = self.drop(self.pos(x))
        h = self.encoder(x, key_padding_mask=pad)  # (B, T, C)
        if self.m.pooling == "cls":
            pooled = h[:, 0]
        elif self.m.pooling == "mean":
            keep = (~pad).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            pooled = (h * keep).sum(1) / keep.sum(1)
        else:  # max
            pooled = h.masked_fill(pad.unsqueeze(-1), float("-inf")).max(1).values
        return self.head(self.drop(pooled))


def init_embeddings(model: NewsClassifier, vectors: np.ndarray, found: np.ndarray) -> None:
    """Copy pretrained rows (where `found`) into the embedding, rescaled to the random init's spread."""
    weight = model.embed.weight
    with torch.no_grad():
        v = torch.as_tensor(vectors, dtype=weight.dtype)
        v = v / (v[torch.as_tensor(found)].std() + 1e-8) * weight.std()
        weight[torch.as_tensor(found)] = v[torch.as_tensor(found)]
        weight[PAD_ID].zero_()


def save_model(model: NewsClassifier, path: Path, vocab_size: int, n_classes: int) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": dataclasses.asdict(model.m), "vocab_size": vocab_size, "n_classes": n_classes,
                    "state_dict": model.state_dict()}, tmp)  # fmt: skip


def load_model(path: Path, device: torch.device | str = "cpu") -> NewsClassifier:
    if not path.is_file():
        raise DataError(f"{path}: model file not found (run news-train)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = NewsClassifier(ModelParams(**saved["model"]), saved["vocab_size"], saved["n_classes"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


@torch.inference_mode()
def predict_logits(
    model: NewsClassifier, ids: np.ndarray, lengths: np.ndarray, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Logits (N, n_classes); each batch is cut to its longest sequence."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(ids), batch_size):
        width = int(lengths[start : start + batch_size].max())
        batch = torch.as_tensor(ids[start : start + batch_size, :width], dtype=torch.long, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), dtype=np.float32)
