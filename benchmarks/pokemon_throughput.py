"""Training and generation speed of the pokemon decoder for each architecture, on this machine.

    python benchmarks/pokemon_throughput.py [--device auto] [--steps 5] [--threads 1] [--kernels fast]
    python benchmarks/pokemon_throughput.py --sizes 128x4x4 --archs llama --dropouts 0.2 0 0.2 0

Prints, per arch, size and dropout: parameters, seconds per training step (batch 16 × 400
tokens), training sequences per second, and seconds to complete 80 prompts of
240 tokens to 400 (greedy). Repeating a setting (as above) shows the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.common.runtime import resolve_device, set_kernels, set_threads  # noqa: E402
from stages.pokemon.config import ModelParams, PredictParams  # noqa: E402
from stages.pokemon.model import build_model, complete, next_token_loss  # noqa: E402

SIZES = [(64, 2, 2), (128, 4, 4), (256, 6, 8)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--kernels", default="portable", choices=["portable", "fast"])
    parser.add_argument("--archs", nargs="+", default=["gpt2", "llama", "mistral", "qwen2"])
    parser.add_argument(
        "--sizes", nargs="+", default=[f"{d}x{n}x{h}" for d, n, h in SIZES], help="d_model x layers x heads"
    )
    parser.add_argument("--dropouts", nargs="+", type=float, default=[0.1])
    args = parser.parse_args()
    set_kernels(args.kernels)
    set_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'arch':8} {'d×L':>7} {'dropout':>7} {'params':>10} {'s/step':>8} {'seq/s':>8} {'gen80 s':>8}")
    batch = torch.randint(0, 167, (16, 400), device=device)
    prompts = np.random.default_rng(0).integers(0, 167, (80, 240))
    settings = [(a, *map(int, s.split("x")), p) for a in args.archs for s in args.sizes for p in args.dropouts]
    for arch, d_model, n_layer, n_head, dropout in settings:
        torch.manual_seed(0)
        m = ModelParams(arch=arch, d_model=d_model, n_layer=n_layer, n_head=n_head, dropout=dropout)
        model = build_model(m, 167).to(device)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        next_token_loss(model, batch).backward()  # warm-up
        start = time.perf_counter()
        for _ in range(args.steps):
            optimizer.zero_grad()
            next_token_loss(model, batch).backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        step = (time.perf_counter() - start) / args.steps
        model.eval()
        start = time.perf_counter()
        complete(model, prompts, PredictParams(strategy="greedy"), device)
        generate = time.perf_counter() - start
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"{arch:8} {f'{d_model}×{n_layer}':>7} {dropout:>7} {n_params:>10,} {step:>8.3f} {16 / step:>8.1f} {generate:>8.2f}"
        )


if __name__ == "__main__":
    main()
