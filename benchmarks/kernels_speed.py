"""What `common.kernels: portable` costs against `fast`: ms per training step of three models.

The project's Transformer encoder, a conv net, and the pokemon `strong30` preset's decoder (Llama 128×4,
dropout 0.2, batch 16 × 400 tokens of 167 colours: the shape of its real-data training steps).

    python -m benchmarks.kernels_speed            # each mode in its own process (MKL fixes its branch per process)

One thread, the fused AdamW step, 2 warm-up steps then `--steps` timed ones; the two modes alternate
`--rounds` times so that a change in the machine's load hits both. Prints one line per model and mode, and the
portable/fast ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def measure(kernels: str, steps: int) -> dict[str, float]:
    import stages  # noqa: F401  (the pins)
    from stages.common.runtime import set_kernels

    set_kernels(kernels)
    import torch
    import torch.nn.functional as F

    from stages.common.cnn import CNNConfig, ConvNet
    from stages.common.transformer import Encoder

    torch.set_num_threads(1)
    torch.manual_seed(0)

    def ms_per_step(model, batch, loss) -> float:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        for i in range(steps + 2):
            if i == 2:
                start = time.perf_counter()
            opt.zero_grad()
            loss(model, batch).backward()
            opt.step()
        return (time.perf_counter() - start) / steps * 1000

    from stages.pokemon.config import ModelParams
    from stages.pokemon.model import build_model, next_token_loss

    llama = ModelParams(arch="llama", d_model=128, n_layer=4, n_head=4, d_ff=0, dropout=0.2)
    sprites = torch.randint(0, 167, (16, 400))
    tokens = torch.randn(16, 128, 128)
    images, labels = torch.randn(32, 3, 64, 64), torch.randint(0, 10, (32,))
    return {
        "transformer d128 L4 T128 B16": ms_per_step(
            Encoder(4, 128, 4, 512, dropout=0.0, use_sdpa=True), tokens, lambda m, b: m(b).pow(2).mean()
        ),
        "convnet w32 d4 64px B32": ms_per_step(
            ConvNet(10, CNNConfig(width=32, depth=4)), (images, labels), lambda m, b: F.cross_entropy(m(b[0]), b[1])
        ),
        "pokemon strong30 decoder B16 T400": ms_per_step(build_model(llama, 167), sprites, next_token_loss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=("portable", "fast"), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    runs: dict[str, dict[str, list[float]]] = {"portable": {}, "fast": {}}
    for _ in range(args.rounds):
        for kernels in runs:
            cmd = [sys.executable, "-m", "benchmarks.kernels_speed", "--one", kernels, "--steps", str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
            for model, ms in json.loads(out).items():
                runs[kernels].setdefault(model, []).append(ms)
    for model in runs["fast"]:
        portable, fast = statistics.median(runs["portable"][model]), statistics.median(runs["fast"][model])
        print(f"{model}: portable {portable:.0f} ms/step, fast {fast:.0f} ms/step, ratio {portable / fast:.2f}")


if __name__ == "__main__":
    main()
