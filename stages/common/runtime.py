"""Seeding, determinism and device selection."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

from stages.common.params import ParamsError

if TYPE_CHECKING:
    import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str = "auto") -> torch.device:  # noqa: F821
    """`auto` picks cuda, then mps, then cpu; anything else is passed to torch.device and checked."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ParamsError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParamsError(f"device '{name}' requested but CUDA is not available (use device: auto or cpu)")
    return device


def thread_count(task_threads: int, common_threads: int) -> int:
    """A task's own `threads` when set (> 0), else `common.threads`: both keys decide it, so both are declared."""
    return task_threads or common_threads


def set_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def setup(seed: int, device: str = "auto", threads: int = 0) -> torch.device:
    """The start of every training or inference stage: seeds, thread count, device."""
    seed_everything(seed)
    set_threads(threads)
    return resolve_device(device)
