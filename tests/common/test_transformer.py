"""The from-scratch Transformer blocks: both attention paths agree, masks do what they say."""

from __future__ import annotations

import pytest
import torch

from stages.common.transformer import (
    DecoderBlock,
    Encoder,
    MultiHeadAttention,
    additive_mask,
    positional_encoding,
    set_sdpa,
)


def _pair(d_model: int = 32, n_head: int = 4) -> tuple[MultiHeadAttention, MultiHeadAttention]:
    torch.manual_seed(0)
    own = MultiHeadAttention(d_model, n_head, dropout=0.0, use_sdpa=False)
    fast = MultiHeadAttention(d_model, n_head, dropout=0.0, use_sdpa=True)
    fast.load_state_dict(own.state_dict())
    return own.eval(), fast.eval()


@pytest.mark.parametrize("case", ["none", "padding", "causal", "bool_mask", "float_mask", "cross"])
def test_own_attention_equals_sdpa(case: str) -> None:
    own, fast = _pair()
    torch.manual_seed(1)
    x = torch.randn(3, 7, 32)
    kwargs: dict = {}
    if case == "padding":
        kwargs["key_padding_mask"] = torch.tensor([[False] * 7, [False] * 4 + [True] * 3, [False] + [True] * 6])
    elif case == "causal":
        kwargs["is_causal"] = True
    elif case == "bool_mask":
        kwargs["attn_mask"] = torch.rand(7, 7) > 0.7
        kwargs["attn_mask"].fill_diagonal_(False)
    elif case == "float_mask":
        kwargs["attn_mask"] = torch.randn(3, 7, 7)
    elif case == "cross":
        kwargs["context"] = torch.randn(3, 5, 32)
        kwargs["key_padding_mask"] = torch.tensor([[False] * 5, [False] * 2 + [True] * 3, [False] * 4 + [True]])
    torch.testing.assert_close(own(x, **kwargs), fast(x, **kwargs), rtol=1e-5, atol=1e-5)


def test_own_attention_matches_the_formula() -> None:
    """One head, identity projections: softmax(QKᵀ/√d)V written out by hand."""
    attn = MultiHeadAttention(4, 1, bias=False).eval()
    for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
        proj.weight.data = torch.eye(4)
    x = torch.randn(1, 3, 4)
    expected = torch.softmax(x[0] @ x[0].T / 2.0, dim=-1) @ x[0]
    torch.testing.assert_close(attn(x)[0], expected)


def test_padding_does_not_change_real_positions() -> None:
    """Adding pad tokens (masked) leaves the outputs at the real positions unchanged."""
    torch.manual_seed(0)
    enc = Encoder(2, 16, 2, 32, dropout=0.0).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    mask = torch.tensor([[False] * 5 + [True] * 3])
    torch.testing.assert_close(enc(x), enc(padded, key_padding_mask=mask)[:, :5], rtol=1e-5, atol=1e-5)


def test_causal_self_attention_ignores_the_future() -> None:
    torch.manual_seed(0)
    block = DecoderBlock(16, 2, 32, dropout=0.0).eval()
    memory = torch.randn(2, 4, 16)
    x = torch.randn(2, 6, 16)
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 2, 16)  # only the last two positions differ
    torch.testing.assert_close(block(x, memory)[:, :4], block(changed, memory)[:, :4])


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_shapes_and_sdpa_switch(norm_first: bool) -> None:
    torch.manual_seed(0)
    block = DecoderBlock(16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    x, memory = torch.randn(2, 6, 16), torch.randn(2, 9, 16)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 5:] = True
    y = block(x, memory, memory_padding_mask=pad)
    assert y.shape == (2, 6, 16)
    set_sdpa(block, True)
    torch.testing.assert_close(block(x, memory, memory_padding_mask=pad), y, rtol=1e-5, atol=1e-5)


def test_encoder_pre_and_post_ln_train() -> None:
    for norm_first in (True, False):
        torch.manual_seed(0)
        enc = Encoder(2, 16, 4, 32, dropout=0.1, norm_first=norm_first)
        x = torch.randn(4, 5, 16)
        enc(x).pow(2).mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


def test_positional_encodings() -> None:
    sin = positional_encoding("sinusoidal", 8, 20)
    x = torch.zeros(1, 10, 8)
    pe = sin(x)[0]
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4))  # sin(0)=0, cos(0)=1
    assert pe.abs().max() <= 1.0
    learned = positional_encoding("learned", 8, 20)
    assert learned(x).shape == (1, 10, 8) and learned.pe.requires_grad
    with pytest.raises(ValueError):
        positional_encoding("rotary", 8, 20)  # type: ignore[arg-type]


def test_mask_combination() -> None:
    pad = torch.tensor([[False, True]])
    bias = additive_mask(2, 2, pad, None, True, torch.float32, torch.device("cpu"))
    assert bias.shape == (1, 1, 2, 2)
    assert torch.isinf(bias[0, 0, 0, 1]) and bias[0, 0, 0, 0] == 0 and torch.isinf(bias[0, 0, 1, 1])
    assert additive_mask(2, 2, None, None, False, torch.float32, torch.device("cpu")) is None
    with pytest.raises(ValueError):
        MultiHeadAttention(10, 3)


def test_both_paths_run_under_bf16_autocast() -> None:
    """The additive mask follows the projections' dtype, as SDPA requires under autocast (GPU training)."""
    own, fast = _pair()
    x = torch.randn(2, 5, 32)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = own(x, key_padding_mask=pad, is_causal=True), fast(x, key_padding_mask=pad, is_causal=True)
    assert a.dtype == b.dtype == torch.bfloat16
    torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)
