"""The scaffolding every epoch trainer shares, written once: resume, MLflow, the time budget, the epoch's row,
the best epoch, early stopping, checkpoints and the outputs that close a run.

A trainer keeps what is its own (the model, how a batch is drawn, its loss, what a row holds, what "best"
means) and hands the rest to a `Loop`:

    loop = fit.Loop(STAGE, config.TASK, scratch, model, optimizer, scheduler, epochs=t.epochs, root=paths.root)
    if loop.saved:                                  # resumed: the trainer restores its own generators
        g.set_state(loop.saved["generator"])
    with loop.tracking(tracked_params, common.mlflow) as tracker:
        for epoch in loop:                          # the epochs left; stops at the budget or the patience
            ...                                     # the task's own: batches, loss, validation
            loop.step(loss, weight, grad_clip)      # per batch: backward, clip, optimiser and schedule steps
            loop.end_epoch(row, score=-val_accuracy, generator=g.get_state())
        if not distributed.is_main():
            return {}
        loop.restore_best()
        loop.finish(...)                            # history CSV, plots, metrics, timings, MLflow
    loop.clear()

A trainer led by steps, not epochs (ddpm), makes each epoch a fixed number of steps (one loss row) and
checkpoints every few of them (`checkpoint_every`).

Every rank runs the same code: `end_epoch` takes rank 0's row and score (every rank keeps the same epoch and
stops together), only rank 0 writes checkpoints and outputs. The loop draws no random number, so a trainer
moved onto it gives the bytes it gave before. Checkpoints hold tensors and plain values only
(`stages.common.checkpoint`); a resumed run continues its MLflow run and ends with the weights of an
uninterrupted one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stages.common import checkpoint, distributed


class Loop:
    """One training run's epochs. `score`s are compared lower-is-better (a number or a tuple)."""

    def __init__(
        self,
        stage: str,
        task: str,
        scratch: Path,
        model: Any,
        optimizer: Any,
        scheduler: Any | None,
        *,
        epochs: int,
        root: str | Path = ".",
        max_minutes: float = 0.0,
        patience: int = 0,
        kept: Any = None,
        checkpoint_every: int = 1,
    ) -> None:
        self.stage, self.task, self.scratch, self.root = stage, task, scratch, Path(root)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.kept = model if kept is None else kept  # the module whose weights are scored and kept (an EMA's)
        self.epochs, self.max_minutes, self.patience = epochs, max_minutes, patience
        self.checkpoint_every = checkpoint_every  # epochs between checkpoints; 0 = none (a restart starts over)
        self.history: list[dict] = []
        self.best: dict[str, Any] = {"score": None, "epoch": 0, "state": None}
        self.first, elapsed, self.run_id, self.tracker = 1, 0.0, None, None
        self.saved = checkpoint.resume(scratch, model, optimizer, scheduler)
        if self.saved is not None:
            self.history, self.first = self.saved["history"], self.saved["epoch"] + 1
            self.best = self.saved.get("best", self.best)
            elapsed, self.run_id = self.saved.get("elapsed", 0.0), self.saved.get("mlflow_run_id")
        self.start = time.time() - elapsed  # the run's clock, continued across a resume
        self._epoch_start, self._epoch_seconds = self.start, 0.0

    @contextmanager
    def tracking(self, params: dict[str, Any], enabled: bool) -> Iterator[Any]:
        """The run's MLflow run (the interrupted one's, continued, after a resume), on rank 0 only."""
        from stages.common.tracking import tracked_run

        on = enabled and distributed.is_main()
        with tracked_run(self.task, self.stage, params, on, self.root, run_id=self.run_id) as tracker:
            self.tracker = tracker
            yield tracker

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.first, self.epochs + 1):
            if self.patience and self.best["epoch"] and epoch - 1 - self.best["epoch"] >= self.patience:
                print(f"early stop: no better score since epoch {self.best['epoch']}")  # (a resumed run too)
                return
            budget = self.max_minutes and self.history
            over = budget and time.time() - self.start + self._epoch_seconds > 60 * self.max_minutes
            if distributed.broadcast(bool(over)):  # rank 0's clock decides for every rank
                print(f"time budget of {self.max_minutes} min reached after epoch {epoch - 1}")
                return
            self._epoch_start = time.time()
            yield epoch

    def step(self, loss: Any, weight: float = 1.0, grad_clip: float = 0.0) -> None:
        """One optimiser step on this rank's share (`weight`, `distributed.shard`) of the global batch's loss:
        backward, gradient-norm clipping when `grad_clip` > 0, the optimiser's step, then the scheduler's."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        distributed.weighted(loss, weight).backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def end_epoch(self, row: dict[str, Any], score: Any = None, **state: Any) -> dict[str, Any]:
        """Rank 0's `row` (and `score`) for every rank: the best epoch, the history, MLflow, one printed line, a
        checkpoint (with `state`, the trainer's own: generators, EMA, ...). Returns the row."""
        row, score = distributed.broadcast((row, score))
        epoch = row["epoch"]
        if score is not None and (self.best["score"] is None or _key(score) < _key(self.best["score"])):
            self.best = {"score": score, "epoch": epoch, "state": copy.deepcopy(self.kept.state_dict())}
        self._epoch_seconds = time.time() - self._epoch_start
        self.history.append(row)
        self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if distributed.is_main() and self.checkpoint_every and epoch % self.checkpoint_every == 0:
            checkpoint.save(self.scratch, epoch, self.model, self.optimizer, self.scheduler, history=self.history,
                            best=self.best, epoch=epoch, elapsed=time.time() - self.start,
                            mlflow_run_id=self.tracker.run_id, **state)  # fmt: skip
        return row

    @property
    def seconds(self) -> float:
        return time.time() - self.start

    def restore_best(self) -> dict[str, Any]:
        """Put the best epoch's weights back into the model; returns that epoch's row."""
        self.model.load_state_dict(self.best["state"])
        return self.history[self.best["epoch"] - 1]

    def finish(
        self,
        metrics: tuple[Path, dict[str, Any]],
        timings: tuple[Path, dict[str, Any]],
        *,
        csv: Path,
        plots: Sequence[tuple[Path, Sequence[str], str, str]] = (),
        rows: Sequence[dict[str, Any]] | None = None,
        x: str = "epoch",
    ) -> None:
        """Rank 0's outputs: the history CSV (`rows`, default the history), one line plot per (path, columns,
        title, y label) against the column `x`, the (path, summary) metrics, the (path, figures) timings, and all
        of it in MLflow."""
        from stages.common.io import write_csv, write_json
        from stages.common.plots import line_plot
        from stages.common.runtime import write_timings

        rows = self.history if rows is None else rows
        write_csv(csv, rows)
        for path, ys, title, ylabel in plots:
            line_plot(path, rows, x, ys, title, ylabel)
        write_json(*metrics)
        write_timings(*timings)
        figures = {**metrics[1], **timings[1]}
        self.tracker.log_metrics({k: v for k, v in figures.items() if isinstance(v, int | float)})
        for path, *_ in plots:
            self.tracker.log_artifact(path)

    def clear(self) -> None:
        """The run is complete: its checkpoints go."""
        checkpoint.clear(self.scratch)


def decay_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """An optimiser's two parameter groups: weight decay on matrices and kernels, none on biases, norm scales and
    other 1-d parameters (in the model's parameter order within each group)."""
    params = list(model.parameters())
    return [
        {"params": [q for q in params if q.ndim > 1], "weight_decay": weight_decay},
        {"params": [q for q in params if q.ndim <= 1], "weight_decay": 0.0},
    ]


def _key(score: Any) -> Any:
    """A score as compared: a tuple saved in a checkpoint comes back as a list."""
    return tuple(score) if isinstance(score, list | tuple) else score
