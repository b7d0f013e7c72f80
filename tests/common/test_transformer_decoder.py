"""The shared DecoderBlock as coco-caption uses it: causal self-attention and cross-attention on the image."""

from __future__ import annotations

import torch

from stages.coco_caption.model import CaptioningTransformer
from stages.common.transformer import DecoderBlock, MultiHeadAttention, additive_mask


def test_causal_mask_is_lower_triangular_with_minus_inf() -> None:
    bias = additive_mask(5, 5, None, None, True, torch.float32, torch.device("cpu"))[0, 0]
    assert torch.isinf(bias.triu(1)[torch.ones(5, 5).triu(1).bool()]).all()
    assert (bias.tril() == 0).all()


def test_no_position_attends_to_a_later_one() -> None:
    torch.manual_seed(0)
    block = DecoderBlock(16, 4, 32, dropout=0.0).eval()
    x, memory = torch.randn(2, 7, 16), torch.randn(2, 1, 16)
    out = block(x, memory)
    for t in range(6):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])  # change only the future
        assert torch.allclose(block(changed, memory)[:, : t + 1], out[:, : t + 1], atol=1e-6)
    changed = x.clone()
    changed[:, 3] += 1.0  # a change at position 3 reaches 3.. but not 0..2
    diff = (block(changed, memory) - out).abs().sum(-1)[0]
    assert (diff[:3] < 1e-6).all() and (diff[3:] > 1e-6).all()


def test_sdpa_path_agrees_with_own_path() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    own = attn(x, is_causal=True)
    attn.use_sdpa = True
    assert torch.allclose(own, attn(x, is_causal=True), atol=1e-5)


def test_cross_attention_changes_output_when_image_feature_changes() -> None:
    torch.manual_seed(0)
    model = CaptioningTransformer(vocab_size=12, input_dim=8, embed_dim=16, num_heads=2, num_layers=2, ff_dim=32).eval()
    captions = torch.randint(1, 12, (3, 6))
    features = torch.randn(3, 8)
    a = model(features, captions)
    b = model(features + torch.randn(3, 8), captions)
    assert a.shape == (3, 6, 12)
    assert ((a - b).abs().amax(-1) > 1e-6).all()  # every position of every caption sees the image
    # and the block itself: same target, different memory -> different output at every position
    block = DecoderBlock(16, 2, 32, dropout=0.0).eval()
    x = torch.randn(1, 4, 16)
    diff = (block(x, torch.randn(1, 1, 16)) - block(x, torch.randn(1, 1, 16))).abs().sum(-1)
    assert (diff > 1e-5).all()


def test_init_is_normal_002_and_greedy_sample_shape() -> None:
    torch.manual_seed(0)
    model = CaptioningTransformer(vocab_size=50, input_dim=8, embed_dim=64, num_heads=4, num_layers=1, ff_dim=128)
    assert abs(model.output.weight.std().item() - 0.02) < 0.003
    assert (model.output.bias == 0).all()
    out = model.sample(torch.randn(2, 8), max_length=5)
    assert out.shape == (2, 5) and out.dtype == torch.long
