"""stages.common.schedule.warmup_cosine: the factors its docstring states."""

from __future__ import annotations

import math

import pytest
import torch

from stages.common.schedule import warmup_cosine


def factors(warmup: int, total: int, decay: bool = True) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup, total, decay)
    out = []
    for _ in range(total + 2):  # two steps past the end: it stays at 0
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_linear_warmup_then_cosine_to_zero():
    f = factors(4, 12)
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]  # the peak at the last warmup step
    assert f[4] == 1.0 and f[8] == pytest.approx(0.5) and f[12:] == [0.0, 0.0]
    assert all(a >= b for a, b in zip(f[3:], f[4:], strict=False))  # never rises after the warmup


def test_no_warmup_is_plain_cosine_and_no_decay_is_constant():
    assert factors(0, 10)[:10] == [0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)]
    assert factors(2, 6, decay=False) == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
