"""Shared by the resume tests: interrupt a trainer after a given checkpoint, kill a stage process with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stages.common import checkpoint

ROOT = Path(__file__).resolve().parents[1]


class Interrupted(Exception):
    """Stands for a crash (or Ctrl-C) right after a checkpoint was written."""


def interrupt_after(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    real_save = checkpoint.save

    def save_then_crash(folder, at, *state, **extra):
        real_save(folder, at, *state, **extra)
        if at == epoch:
            raise Interrupted(f"after epoch {at}")

    monkeypatch.setattr(checkpoint, "save", save_then_crash)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def kill_after_first_checkpoint(cmd: list[str], cwd: Path, checkpoints: Path, timeout: float = 120) -> int:
    """Start `cmd`, SIGKILL it as soon as a checkpoint appears in a folder of `checkpoints`; its return code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if any(not f.parent.name.endswith(".tmp") for f in checkpoints.rglob("epoch-*.pt")):  # complete
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def run_stage(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
