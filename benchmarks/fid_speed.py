"""Inception feature extraction speed (the cost of FID) on this machine.

python benchmarks/fid_speed.py [--images 64] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.common import fid  # noqa: E402
from stages.common.runtime import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    start = time.perf_counter()
    extractor = fid.load_extractor(device)
    print(f"extractor {extractor[1]} on {device}: loaded in {time.perf_counter() - start:.2f} s")
    images = np.random.default_rng(0).integers(0, 256, (args.images, 20, 20, 3), dtype=np.uint8)
    start = time.perf_counter()
    fid.inception_features(images, extractor, batch_size=args.batch_size, device=device)
    seconds = time.perf_counter() - start
    print(
        f"{args.images} images: {seconds:.2f} s, {seconds / args.images:.3f} s/image, {args.images / seconds:.1f} images/s"
    )


if __name__ == "__main__":
    main()
