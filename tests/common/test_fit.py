"""stages.common.fit.Loop: the shared scaffolding of the trainers, tested once on a tiny model.

Each trainer's own tests (fixed-seed weights, resume after SIGKILL, DDP under gloo) run through it too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stages.common import fit

LOSSES = [3.0, 1.0, 2.0, 0.5, 0.7, 0.9, 0.1, 0.2]  # the toy "validation loss" of epochs 1..8: best of 6 at 4


def make(folder: Path, epochs: int = 6, **kw) -> tuple[fit.Loop, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return fit.Loop("toy-train", "toy", folder, model, optimizer, scheduler, epochs=epochs, root=folder, **kw), model


def train(loop: fit.Loop, model: torch.nn.Module, stop_after: int = 0, score=lambda e: LOSSES[e - 1]) -> None:
    """One SGD step per epoch on fixed data; `stop_after`: the process 'dies' after that epoch (no clear)."""
    x, y = torch.ones(4, 3), torch.zeros(4, 2)
    with loop.tracking({"p": 1}, enabled=False):
        for epoch in loop:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loop.optimizer.zero_grad()
            loss.backward()
            loop.optimizer.step()
            loop.scheduler.step()
            loop.end_epoch({"epoch": epoch, "train_loss": loss.item()}, score(epoch), marker=epoch)
            if epoch == stop_after:
                return


def test_best_epoch_is_kept_and_restored(tmp_path):
    loop, model = make(tmp_path / "a")
    snapshots = []
    train(loop, model, score=lambda e: snapshots.append(model.weight.detach().clone()) or LOSSES[e - 1])
    assert [r["epoch"] for r in loop.history] == [1, 2, 3, 4, 5, 6]
    assert loop.restore_best()["epoch"] == 4 == loop.best["epoch"]
    assert torch.equal(model.weight, snapshots[3])


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    whole, model = make(tmp_path / "whole")
    train(whole, model)
    whole.restore_best()

    first, model_a = make(tmp_path / "cut")
    train(first, model_a, stop_after=3)  # killed after epoch 3: its checkpoints stay
    again, model_b = make(tmp_path / "cut")
    assert again.saved["marker"] == 3 and again.first == 4  # the trainer's own state comes back with it
    train(again, model_b)
    again.restore_best()
    assert again.history == whole.history and again.best["epoch"] == whole.best["epoch"]
    assert torch.equal(model_b.weight, model.weight) and torch.equal(model_b.bias, model.bias)
    again.clear()
    assert not (tmp_path / "cut").exists()


def test_patience_stops_after_that_many_epochs_without_a_better_score(tmp_path):
    loop, model = make(tmp_path / "p", epochs=8, patience=2)
    train(loop, model)
    assert [r["epoch"] for r in loop.history] == [1, 2, 3, 4, 5, 6]  # best at 4, 5 and 6 no better: epoch 7 not run
    loop2, model2 = make(tmp_path / "q", patience=1)
    train(loop2, model2)
    assert [r["epoch"] for r in loop2.history] == [1, 2, 3]  # epoch 3 was not better than 2: stop
    cut, model3 = make(tmp_path / "r", patience=1)
    train(cut, model3, stop_after=3)  # killed after the epoch that used up the patience
    again, model3 = make(tmp_path / "r", patience=1)
    train(again, model3)
    assert [r["epoch"] for r in again.history] == [1, 2, 3]  # the resumed run stops too


def test_tuple_scores_compare_after_a_resume(tmp_path):
    first, model = make(tmp_path / "t", epochs=4)
    scores = {1: (-0.5, 1.0), 2: (-0.6, 2.0), 3: (-0.6, 1.5), 4: (-0.6, 1.7)}  # (-accuracy, loss): best at 3
    train(first, model, stop_after=2, score=scores.get)
    again, model = make(tmp_path / "t", epochs=4)
    train(again, model, score=scores.get)
    assert again.best["epoch"] == 3


def test_the_time_budget_stops_between_epochs(tmp_path, monkeypatch, capsys):
    clock = iter(range(0, 10_000, 50))  # every call to time.time() is 50 s later
    monkeypatch.setattr(fit.time, "time", lambda: float(next(clock)))
    loop, model = make(tmp_path / "b", max_minutes=5)
    train(loop, model)
    assert 1 <= len(loop.history) < 6
    assert f"time budget of 5 min reached after epoch {len(loop.history)}" in capsys.readouterr().out


def test_no_epoch_left_runs_nothing(tmp_path):
    loop, model = make(tmp_path / "z", epochs=0)
    train(loop, model)
    assert loop.history == []


def test_checkpoints_every_few_epochs_and_a_restart_resumes_from_the_last_one(tmp_path):
    """checkpoint_every 2: epochs 2 and 4 are saved; a run killed after 3 resumes after 2. 0: none, it starts over."""
    first, model = make(tmp_path / "two", checkpoint_every=2)
    train(first, model, stop_after=3)
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pt")) == ["epoch-00002.pt"]
    assert make(tmp_path / "two", checkpoint_every=2)[0].first == 3
    never, model = make(tmp_path / "none", checkpoint_every=0)
    train(never, model, stop_after=3)
    assert not list((tmp_path / "none").glob("*.pt")) and make(tmp_path / "none")[0].first == 1
