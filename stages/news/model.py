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

from stages.common import checkpoint, runtime
from stages.common.io import DataError, atomic_path
from stages.common.transformer import Encoder, positional_encoding
from stages.news.config import ModelParams

PAD_ID, UNK_ID, CLS_ID = 0, 1, 2


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
        if self.training and self.m.token_dropout > 0:  # word dropout: a token becomes [UNK], its position stays
            hit = torch.rand(ids.shape, device=ids.device) < self.m.token_dropout
            ids = ids.masked_fill(hit & (ids > CLS_ID), UNK_ID)
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


class Ensemble(nn.Module):
    """Classifiers with the same vocabulary and classes; forward returns log of their mean class probabilities."""

    def __init__(self, members: list[NewsClassifier]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.embed, self.head = members[0].embed, members[0].head  # vocabulary and class count, as a classifier's

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) int -> (B, n_classes) log mean probability
        probs = torch.stack([member(ids).float().softmax(-1) for member in self.members])  # (M, B, n_classes)
        return probs.mean(0).log()


def init_embeddings(model: NewsClassifier, vectors: np.ndarray, found: np.ndarray) -> None:
    """Copy pretrained rows (where `found`) into the embedding, rescaled to the random init's spread."""
    weight = model.embed.weight
    with torch.no_grad():
        v = torch.as_tensor(vectors, dtype=weight.dtype)
        v = v / (v[torch.as_tensor(found)].std() + 1e-8) * weight.std()
        weight[torch.as_tensor(found)] = v[torch.as_tensor(found)]
        weight[PAD_ID].zero_()


def save_model(model: NewsClassifier | Ensemble, path: Path, vocab_size: int, n_classes: int) -> None:
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    with atomic_path(path) as tmp:
        torch.save({"model": dataclasses.asdict(members[0].m), "vocab_size": vocab_size, "n_classes": n_classes,
                    "state_dict": members[0].state_dict(),
                    "more_members": [member.state_dict() for member in members[1:]]}, tmp)  # fmt: skip


def load_model(path: Path, device: torch.device | str = "cpu") -> NewsClassifier | Ensemble:
    """The saved classifier, or the Ensemble of its members when news.train.members > 1."""
    saved = checkpoint.load(path, made_by="news-train")
    members = []
    try:
        for state in [saved["state_dict"], *saved.get("more_members", [])]:
            members.append(NewsClassifier(ModelParams(**saved["model"]), saved["vocab_size"], saved["n_classes"]))
            members[-1].load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{path}: not a model written by news-train ({type(err).__name__}); run it again") from None
    model = members[0] if len(members) == 1 else Ensemble(members)
    return model.to(device).eval()


@torch.inference_mode()
def predict_logits(
    model: NewsClassifier | Ensemble, ids: np.ndarray, lengths: np.ndarray, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Logits (N, n_classes); each batch is cut to its longest sequence."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(ids), batch_size):
        width = int(lengths[start : start + batch_size].max())
        batch = torch.as_tensor(ids[start : start + batch_size, :width], dtype=torch.long, device=device)
        with runtime.autocast(device):
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), dtype=np.float32)
