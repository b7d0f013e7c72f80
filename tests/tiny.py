"""Tiny params for tests, one way for every task: `tests/tiny_params.yaml` merged key by key onto the real
defaults in params.yaml, then validated by the task's own schema."""

from __future__ import annotations

import shutil
import subprocess
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


def copy_checkout(dest: Path) -> Path:
    """This checkout's working tree (tracked and untracked files git does not ignore) in `dest`, without
    dvc.lock, so DVC there runs every stage it is asked for."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file() and name != "dvc.lock":
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def keep_stages(repo: Path, names: set[str]) -> None:
    """Cut `repo`'s dvc.yaml to the stages `names` (so commands that look at every stage see only these)."""
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline = {"stages": {name: stage for name, stage in pipeline["stages"].items() if name in names}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
