"""Training and generation speed of the pokemon decoder for each architecture, on this machine.

    python benchmarks/pokemon_throughput.py [--device auto] [--steps 5]

Prints, per arch and size: parameters, seconds per training step (batch 16 × 400
tokens), training sequences per second, and seconds to complete 80 prompts of
240 tokens to 400 (greedy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.common.runtime import resolve_device  # noqa: E402
from stages.pokemon.config import ModelParams, PredictParams  # noqa: E402
from stages.pokemon.model import build_model, complete, next_token_loss  # noqa: E402

SIZES = [(64, 2, 2), (128, 4, 4), (256, 6, 8)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'arch':8} {'d×L':>7} {'params':>10} {'s/step':>8} {'seq/s':>8} {'gen80 s':>8}")
    batch = torch.randint(0, 167, (16, 400), device=device)
    prompts = np.random.default_rng(0).integers(0, 167, (80, 240))
    for arch in ("gpt2", "llama", "mistral", "qwen2"):
        for d_model, n_layer, n_head in SIZES:
            torch.manual_seed(0)
            model = build_model(ModelParams(arch=arch, d_model=d_model, n_layer=n_layer, n_head=n_head), 167).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
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
                f"{arch:8} {f'{d_model}×{n_layer}':>7} {n_params:>10,} {step:>8.3f} {16 / step:>8.1f} {generate:>8.2f}"
            )


if __name__ == "__main__":
    main()
