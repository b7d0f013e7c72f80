"""Resumable training: per-epoch checkpoints in a scratch folder keyed by what the run depends on.

The key is a hash of the stage's params and the hashes of its inputs, so a
checkpoint is only ever resumed by the same run. The folder lives under
`.cache/` (git- and DVC-ignored) and is removed once the final weights are written.
It keeps the newest two checkpoints: when the newest cannot be read (cut short,
damaged), it is moved aside to `<name>.corrupt` (never deleted) with one warning
on stderr, and the run resumes from the one before.

Every checkpoint is read with `weights_only=True` (`load`), so loading one runs no
code. It may hold only tensors, Python numbers, strings, bytes, None, and lists,
tuples and dicts of them: `**extra` of `save` too. torch's `Generator.get_state()`,
a numpy Generator's `bit_generator.state` and `random.getstate()` are such values;
`save` turns numpy scalars into Python numbers and refuses anything else (a numpy
array, a Generator object, a dataclass) with a TypeError naming the entry.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

from stages.common.io import DataError, atomic_path, require_file

KEEP = 2  # checkpoints kept: the newest, and the one to fall back to when the newest is unreadable
NAME = re.compile(r"epoch-(\d+)\.pt")
PLAIN = (int, float, complex, str, bytes)  # and bool, an int


def scratch_dir(base: str | Path, key: Any) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(base) / digest


def save(folder: Path, epoch: int, model: Any, optimizer: Any, scheduler: Any | None, /, **extra: Any) -> None:
    """Write the training state after `epoch` (or step) atomically, then drop all but the newest two.

    The model, optimizer and scheduler state and torch's RNG are what `resume` puts back; `extra` holds
    whatever else the trainer needs to continue exactly (history, best epoch, EMA weights, a generator's
    state), as the values the module docstring lists."""
    import torch

    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        **extra,
    }
    with atomic_path(folder / f"epoch-{epoch:05d}.pt") as tmp:
        torch.save(plain(state, "checkpoint"), tmp)
    for old in checkpoints(folder)[:-KEEP]:
        old.unlink()


def plain(value: Any, where: str) -> Any:
    """`value` as `weights_only=True` loads it back: numpy scalars become Python numbers, and everything else
    it accepts is returned as the same object; what it would refuse is a TypeError (a trainer's bug) naming
    `where`."""
    import numpy as np
    import torch

    if isinstance(value, np.generic):
        return plain(value.item(), where)
    if (
        value is None
        or isinstance(value, PLAIN)
        or isinstance(value, (torch.Tensor, torch.Size, torch.dtype, torch.device))
    ):
        return value
    if type(value) in (dict, collections.OrderedDict):
        items = {key: plain(item, f"{where}[{key!r}]") for key, item in value.items()}
        if all(items[key] is item for key, item in value.items()):
            return value  # unchanged: a state_dict keeps its `_metadata`
        return type(value)(items)
    if type(value) in (list, tuple, set):
        items = [plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds only tensors, "
        "numbers, strings, None and lists/dicts of them (it is read with weights_only=True)"
    )


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, oldest first (by epoch number: `epoch-100000.pt` is after `epoch-99999.pt`)."""
    found = [p for p in folder.glob("epoch-*.pt") if NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(NAME.fullmatch(p.name)[1]))


class Unreadable(Exception):
    """A checkpoint file that does not load; the message is the reason, in a few words."""


def read(path: Path) -> dict[str, Any]:
    """The dict in checkpoint `path`, loaded with `weights_only=True` on the CPU; Unreadable if it is not one."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports a bad file as EOFError, RuntimeError, KeyError, UnpicklingError, ...
        raise Unreadable(_reason(path, err)) from None
    if not isinstance(saved, dict):
        raise Unreadable(f"holds a {type(saved).__name__}, not a checkpoint's dict")
    return saved


def _reason(path: Path, err: Exception) -> str:
    if isinstance(err, OSError):  # unreadable, or moved aside meanwhile by another rank of a DDP run
        return err.strerror or str(err)
    if path.stat().st_size == 0:
        return "empty file"
    if refused := re.search(r"GLOBAL ([\w.]+)", str(err)):
        return f"holds {refused[1]}, which loading with weights_only=True refuses"
    if not zipfile.is_zipfile(path):
        return "cut short, or not a torch checkpoint"
    return str(err).splitlines()[0].split(". ")[0][:200] or type(err).__name__


def load(path: str | Path, *, made_by: str = "") -> dict[str, Any]:
    """The dict checkpoint or weights file `path` holds (read with `weights_only=True`, on the CPU). Missing,
    empty, cut short, not a torch file, or holding more than tensors and plain values: a DataError naming it
    (and `made_by`, the stage that writes it)."""
    path = require_file(path, made_by)
    try:
        return read(path)
    except Unreadable as err:
        raise DataError(
            f"{path}: unreadable checkpoint ({err}); delete it" + (f" and run {made_by} again" if made_by else "")
        ) from None


def latest(folder: Path) -> dict[str, Any] | None:
    """The newest checkpoint in `folder` that loads. One that does not is moved aside to `<name>.corrupt`, with
    one warning on stderr, and the one before it is tried. None: nothing to resume, start afresh."""
    found = checkpoints(folder)
    while found:
        newest = found.pop()
        try:
            saved = read(newest)
        except Unreadable as err:
            _set_aside(newest, str(err), found[-1] if found else None)
            continue
        print(f"resuming from {newest}")
        return saved
    return None


def _set_aside(path: Path, reason: str, previous: Path | None) -> None:
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another rank of a DDP run moved it first
        pass
    if os.environ.get("RANK", "0") == "0":  # every rank of a DDP run finds it alike: one warning, rank 0's
        then = f"resuming from {previous}" if previous else "starting afresh"
        print(f"warning: {path}: unreadable checkpoint ({reason}); moved to {aside}, {then}", file=sys.stderr)


def resume(folder: Path, model: Any, optimizer: Any, scheduler: Any | None) -> dict[str, Any] | None:
    """The newest readable checkpoint in `folder` (see `latest`) with the model, optimizer, scheduler (and torch
    RNG, when saved as `rng`) put back; the caller restores the rest of its own state from the returned dict.
    None: start afresh."""
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
