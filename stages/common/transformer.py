"""Transformer building blocks written from tensor primitives (no nn.Transformer*, no nn.MultiheadAttention).

Shared by `news` (encoder, padding mask), `coco-caption` (decoder: causal self-attention
+ cross-attention) and `vit` (encoder, no mask). nanoGPT style: small modules, shape
comments, and the fast path chosen explicitly: `use_sdpa=True` computes the same
attention with `torch.nn.functional.scaled_dot_product_attention`.

Shape names: B batch, T query length, S key length, C d_model, nh heads, hs head size.
Masks:
  key_padding_mask  (B, S) bool, True = padding (ignored as a key)
  attn_mask         (T, S) or (B, T, S): bool (True = masked out) or float (added to the scores)
  is_causal         position t attends to keys 0..t only
Every query must keep at least one key it may attend to (e.g. a [CLS] token that is never padding);
a row with no key left would be NaN, as in PyTorch's own attention.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """softmax(Q Kᵀ / √hs + mask) V over `n_head` heads, then an output projection."""

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, bias: bool = True, use_sdpa: bool = False):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        self.n_head, self.head_size = n_head, d_model // n_head
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout  # on the attention weights
        self.use_sdpa = use_sdpa

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C) queries
        context: torch.Tensor | None = None,  # (B, S, C) keys/values; None = self-attention
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        context = x if context is None else context
        B, T, C = x.shape
        S = context.shape[1]
        q = self.q_proj(x).view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(context).view(B, S, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, S, hs)
        v = self.v_proj(context).view(B, S, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, S, hs)
        bias = additive_mask(T, S, key_padding_mask, attn_mask, is_causal, q.dtype, x.device)  # (B|1, 1, T, S)
        p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, nh, T, hs)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_size)  # (B, nh, T, S)
            if bias is not None:
                scores = scores + bias
            weights = F.dropout(scores.softmax(dim=-1), p=p, training=self.training)
            y = weights @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble the heads side by side
        return self.out_proj(y)


def additive_mask(
    T: int,
    S: int,
    key_padding_mask: torch.Tensor | None,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor | None:
    """Combine the three kinds of mask into one float tensor added to the scores (0 or -inf), or None."""
    bias = None

    def add(extra: torch.Tensor) -> None:
        nonlocal bias
        bias = extra if bias is None else bias + extra

    if is_causal:
        future = torch.ones(T, S, dtype=torch.bool, device=device).triu(1)  # (T, S) True above the diagonal
        add(torch.zeros(T, S, dtype=dtype, device=device).masked_fill(future, float("-inf")))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros(attn_mask.shape, dtype=dtype, device=device).masked_fill(attn_mask, float("-inf"))
        add(attn_mask.to(dtype))
    if bias is not None:
        bias = bias.view(-1, 1, T, S) if bias.dim() == 3 else bias.view(1, 1, T, S)  # (B|1, 1, T, S)
    if key_padding_mask is not None:
        pad = torch.zeros(key_padding_mask.shape, dtype=dtype, device=device).masked_fill(
            key_padding_mask, float("-inf")
        )
        add(pad[:, None, None, :])  # (B, 1, 1, S)
    return bias


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_hid: int, dropout: float = 0.0, activation: Literal["gelu", "relu"] = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_hid)
        self.fc2 = nn.Linear(d_hid, d_model)
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class EncoderBlock(nn.Module):
    """Self-attention + feed-forward, each wrapped in dropout → residual and a LayerNorm.

    norm_first=True (pre-LN, GPT-2/ViT): x + sublayer(LN(x)); trains stably without warmup.
    norm_first=False (post-LN, the 2017 paper): LN(x + dropout(sublayer(x))).
    """

    def __init__(
        self,
        d_model: int,
        n_head: int,
        d_hid: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        use_sdpa: bool = False,
        activation: Literal["gelu", "relu"] = "gelu",
    ):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_head, dropout, use_sdpa=use_sdpa)
        self.ff = FeedForward(d_model, d_hid, dropout, activation)
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        def attend(h: torch.Tensor) -> torch.Tensor:
            return self.dropout(self.attn(h, key_padding_mask=key_padding_mask, attn_mask=attn_mask))

        if self.norm_first:
            x = x + attend(self.ln1(x))
            return x + self.dropout(self.ff(self.ln2(x)))
        x = self.ln1(x + attend(x))
        return self.ln2(x + self.dropout(self.ff(x)))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention on `memory`, feed-forward; pre- or post-LN as EncoderBlock."""

    def __init__(
        self,
        d_model: int,
        n_head: int,
        d_hid: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        use_sdpa: bool = False,
        activation: Literal["gelu", "relu"] = "relu",
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout, use_sdpa=use_sdpa)
        self.cross_attn = MultiHeadAttention(d_model, n_head, dropout, use_sdpa=use_sdpa)
        self.ff = FeedForward(d_model, d_hid, dropout, activation)
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C) target sequence
        memory: torch.Tensor,  # (B, S, C) e.g. projected image features
        attn_mask: torch.Tensor | None = None,  # (T, T) extra self-attention mask; causal is always applied
        key_padding_mask: torch.Tensor | None = None,  # (B, T) padding of the target sequence
        memory_padding_mask: torch.Tensor | None = None,  # (B, S)
    ) -> torch.Tensor:  # (B, T, C)
        def self_attend(h: torch.Tensor) -> torch.Tensor:
            y = self.self_attn(h, key_padding_mask=key_padding_mask, attn_mask=attn_mask, is_causal=True)
            return self.dropout(y)

        def cross_attend(h: torch.Tensor) -> torch.Tensor:
            return self.dropout(self.cross_attn(h, memory, key_padding_mask=memory_padding_mask))

        if self.norm_first:
            x = x + self_attend(self.ln1(x))
            x = x + cross_attend(self.ln2(x))
            return x + self.dropout(self.ff(self.ln3(x)))
        x = self.ln1(x + self_attend(x))
        x = self.ln2(x + cross_attend(x))
        return self.ln3(x + self.dropout(self.ff(x)))


class SinusoidalPositionalEncoding(nn.Module):
    """PE[pos, 2i] = sin(pos / 10000^(2i/C)), PE[pos, 2i+1] = cos(...); fixed, added to the input."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (C/2,)
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
        self.register_buffer("pe", pe, persistent=False)  # (L, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        return x + self.pe[: x.shape[1]]


class LearnedPositionalEncoding(nn.Module):
    """One trained vector per position (BERT, GPT-2, ViT), added to the input."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.pe = nn.Parameter(torch.zeros(max_len, d_model))
        nn.init.normal_(self.pe, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        return x + self.pe[: x.shape[1]]


def positional_encoding(kind: Literal["sinusoidal", "learned"], d_model: int, max_len: int) -> nn.Module:
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEncoding(d_model, max_len)
    raise ValueError(f"unknown positional encoding '{kind}' (sinusoidal | learned)")


class Encoder(nn.Module):
    """A stack of EncoderBlocks; with pre-LN a final LayerNorm closes the residual stream."""

    def __init__(
        self,
        n_layer: int,
        d_model: int,
        n_head: int,
        d_hid: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        use_sdpa: bool = False,
        activation: Literal["gelu", "relu"] = "gelu",
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, n_head, d_hid, dropout, norm_first, use_sdpa, activation) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, C)
        for block in self.blocks:
            x = block(x, key_padding_mask=key_padding_mask)
        return self.ln_f(x)


def set_sdpa(module: nn.Module, enabled: bool) -> None:
    """Switch every MultiHeadAttention inside `module` between the explicit and the SDPA path."""
    for m in module.modules():
        if isinstance(m, MultiHeadAttention):
            m.use_sdpa = enabled
