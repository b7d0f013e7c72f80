"""Metrics that diff: each task's metrics file holds its headline numbers only (a one-param ablation's
`dvc metrics diff` fits on one screen); the whole evaluation is in reports/<task>_detail.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from stages.common import headlines

ROOT = Path(__file__).resolve().parents[2]
MAX_VALUES = 30  # per metrics file: about what one screen of `dvc metrics diff` shows


def leaves(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in leaves(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def declared_metrics() -> list[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = []
    for stage in stages.values():
        for entry in stage.get("metrics", []):
            out.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return out


@pytest.mark.parametrize("name", sorted(set(declared_metrics())))
def test_every_metrics_file_fits_one_screen(name):
    if "${" in name:  # a foreach stage's file: check each committed one
        files = sorted(ROOT.glob(name.split("${")[0] + "*.json"))
    else:
        files = [ROOT / name]
    for f in files:
        values = leaves(json.loads(f.read_text()))
        assert len(values) <= MAX_VALUES, (
            f"{f.name}: {len(values)} values; move the detail to reports/<task>_detail.json"
        )


@pytest.mark.parametrize("task", sorted(t for t, spec in headlines.TASKS.items() if spec.metrics))
def test_the_view_keeps_every_headline_and_the_detail_keeps_everything(task):
    detail = json.loads(headlines.detail_path(ROOT, task).read_text())
    view = headlines.metrics_view(task, detail)
    for h in headlines.TASKS[task].headlines:
        if h.file == f"metrics/{task}.json":
            assert h.key in leaves(view), f"{task}: headline {h.key} is not in the metrics view"
            if h.own_std:
                assert h.own_std in leaves(view), f"{task}: {h.own_std} is not in the metrics view"
    committed = json.loads((ROOT / "metrics" / f"{task}.json").read_text())
    assert committed == view, f"metrics/{task}.json is not the view of reports/{task}_detail.json: dvc repro"


def test_metrics_view_keeps_structure_and_drops_the_rest(monkeypatch):
    full = {"a": {"x": {"mean": 1.0, "std": 0.1}, "y": {"mean": 2.0}}, "b": 3, "c": [1, 2], "d": {"e": 4}}
    task = "twolayer"
    monkeypatch.setitem(headlines.TASKS, task, dataclasses.replace(headlines.TASKS[task], metrics=("a.*.mean", "c")))
    assert headlines.metrics_view(task, full) == {"a": {"x": {"mean": 1.0}, "y": {"mean": 2.0}}, "c": [1, 2]}
    monkeypatch.setitem(headlines.TASKS, task, dataclasses.replace(headlines.TASKS[task], metrics=()))
    assert headlines.metrics_view(task, full) == full
