"""Training throughput (samples/s) of our encoder — both attention paths — against torch.nn.TransformerEncoder.

Same sizes for all three (embedding, pre-LN blocks, GELU feed-forward, mean pooling,
linear head); only the encoder differs. Padding mask on, random token batches with
varying lengths. Prints a table; on a shared CPU, numbers vary from run to run.

    python benchmarks/news_encoder_throughput.py [--d-model 128 --nlayers 2 --seq 64 --batch 64 --steps 20 --threads 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.common.transformer import Encoder, SinusoidalPositionalEncoding


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, torch_style: bool, vocab: int, d_model: int, seq: int, n_classes: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model, padding_idx=0)
        self.pos = SinusoidalPositionalEncoding(d_model, seq)
        self.encoder, self.torch_style = encoder, torch_style
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        x = self.pos(self.embed(ids))
        h = self.encoder(x, src_key_padding_mask=pad) if self.torch_style else self.encoder(x, key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def build(kind: str, a: argparse.Namespace) -> Classifier:
    if kind == "torch.nn.TransformerEncoder":
        layer = nn.TransformerEncoderLayer(a.d_model, a.nhead, a.d_hid, a.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)  # fmt: skip
        encoder = nn.TransformerEncoder(layer, a.nlayers, norm=nn.LayerNorm(a.d_model), enable_nested_tensor=False)
        return Classifier(encoder, True, a.vocab, a.d_model, a.seq)
    encoder = Encoder(
        a.nlayers, a.d_model, a.nhead, a.d_hid, a.dropout, norm_first=True, use_sdpa=kind.endswith("SDPA")
    )
    return Classifier(encoder, False, a.vocab, a.d_model, a.seq)


def throughput(model: Classifier, a: argparse.Namespace) -> float:
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(a.steps + a.warmup):
        ids = torch.randint(3, a.vocab, (a.batch, a.seq), generator=g)
        lengths = torch.randint(a.seq // 4, a.seq + 1, (a.batch,), generator=g)
        ids[torch.arange(a.seq)[None] >= lengths[:, None]] = 0  # pad the tail
        batches.append((ids, torch.randint(0, 4, (a.batch,), generator=g)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for i, (ids, y) in enumerate(batches):
        if i == a.warmup:
            start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(ids), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return a.steps * a.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--nhead", type=int, default=4)
    parser.add_argument("--d-hid", type=int, default=256)
    parser.add_argument("--nlayers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="best of N measurements per model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    kinds = ["ours (explicit attention)", "ours (SDPA)", "torch.nn.TransformerEncoder"]
    print(f"d_model {a.d_model}, nhead {a.nhead}, d_hid {a.d_hid}, nlayers {a.nlayers}, seq {a.seq}, batch {a.batch}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    models = {}
    for kind in kinds:
        torch.manual_seed(0)
        models[kind] = build(kind, a)
    # Round-robin, best of `repeats`: on a shared CPU the load drifts, and this spreads it over all three.
    results = {kind: 0.0 for kind in kinds}
    for _ in range(a.repeats):
        for kind in kinds:
            results[kind] = max(results[kind], throughput(models[kind], a))
    for kind in kinds:
        n_params = sum(p.numel() for p in models[kind].parameters())
        print(f"{kind:30s} {results[kind]:9.1f} samples/s  ({n_params:,} parameters)")
    base = results["torch.nn.TransformerEncoder"]
    for kind in kinds[:2]:
        print(f"{kind} / torch: {results[kind] / base:.2f}x")


if __name__ == "__main__":
    main()
