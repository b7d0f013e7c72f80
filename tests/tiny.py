"""Tiny params for tests, one way for every task: `tests/tiny_params.yaml` merged key by key onto the real
defaults in params.yaml, then validated by the task's own schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stages.common.params import CommonParams, from_dict

ROOT = Path(__file__).resolve().parents[1]

# Common params for stage functions called directly: CPU, one thread, no MLflow.
COMMON = CommonParams(device="cpu", threads=1, mlflow=False)


def merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        base[key] = merge(dict(base.get(key) or {}), value) if isinstance(value, dict) else value
    return base


def tiny_sections() -> dict[str, Any]:
    """Every section of params.yaml with the tiny overrides applied."""
    full = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return merge(full, yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text(encoding="utf-8")))


def tiny_task(section: str, schema: type) -> Any:
    """The tiny params of one task as its params dataclass."""
    return from_dict(schema, tiny_sections()[section], where=section)


def write_tiny_params(repo: Path) -> None:
    """Replace `repo`'s params.yaml with the tiny one (every section, comments dropped)."""
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_sections(), sort_keys=False), encoding="utf-8")
