"""The learning-rate schedule the trainers share, as a factor of the optimizer's lr (torch's LambdaLR).

`warmup_cosine`, for step s = 0, 1, ... (stepped once after each optimizer step), W warmup steps of `total`:

    s <  W:  (s + 1) / W                                      linear warmup, the peak at the last warmup step
    s >= W:  ½ · (1 + cos(π · min(1, (s − W) / max(1, total − W))))   cosine decay, 0 at `total`
             or 1 with decay=False                             (warmup, then constant)

W = 0 is plain cosine decay from the peak. Steps alone lead it: a time budget stops a run between epochs on
the same curve, so two runs of the same params follow the same learning rates on any machine. Imports nothing
heavy.
"""

from __future__ import annotations

import math
from typing import Any


def warmup_cosine(optimizer: Any, warmup_steps: int, total_steps: int, decay: bool = True) -> Any:
    """A torch LambdaLR on `optimizer` with the factor above."""
    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if not decay:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
