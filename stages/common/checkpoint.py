"""Resumable training: per-epoch checkpoints in a scratch folder keyed by what the run depends on.

The key is a hash of the stage's params and the hashes of its inputs, so a
checkpoint is only ever resumed by the same run. The folder lives under
`.cache/` (git- and DVC-ignored) and is removed once the final weights are written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from stages.common.io import atomic_path


def scratch_dir(base: str | Path, key: Any) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(base) / digest


def save(folder: Path, epoch: int, model: Any, optimizer: Any, scheduler: Any | None, /, **extra: Any) -> None:
    """Write the training state after `epoch` (or step) atomically, then drop older checkpoints.

    The model, optimizer and scheduler state and torch's RNG are what `resume` puts back; `extra` holds
    whatever else the trainer needs to continue exactly (history, best epoch, EMA weights, a generator)."""
    import torch

    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        **extra,
    }
    with atomic_path(folder / f"epoch-{epoch:05d}.pt") as tmp:
        torch.save(state, tmp)
    for old in folder.glob("epoch-*.pt"):
        if old.name != f"epoch-{epoch:05d}.pt":
            old.unlink()


def latest(folder: Path) -> dict[str, Any] | None:
    import torch

    found = sorted(folder.glob("epoch-*.pt"))
    if not found:
        return None
    print(f"resuming from {found[-1]}")
    return torch.load(found[-1], map_location="cpu", weights_only=False)


def resume(folder: Path, model: Any, optimizer: Any, scheduler: Any | None) -> dict[str, Any] | None:
    """The newest checkpoint in `folder` with the model, optimizer, scheduler (and torch RNG, when saved as
    `rng`) put back; the caller restores the rest of its own state from the returned dict. None: start afresh."""
    import torch

    saved = latest(folder)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if "rng" in saved:
            torch.set_rng_state(saved["rng"])
    return saved


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
