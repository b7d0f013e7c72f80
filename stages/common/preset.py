"""Print a named preset from presets/<task>.yaml as `-S key=value` arguments for `dvc exp run`.

dvc exp run $(python -m stages.common.preset pokemon strong)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from stages.common.params import flatten


def preset_args(task: str, name: str, root: str | Path = ".") -> list[str]:
    path = Path(root) / "presets" / f"{task}.yaml"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no presets for task '{task}'")
    presets = yaml.safe_load(path.read_text()) or {}
    if name not in presets:
        raise SystemExit(f"error: {path}: no preset '{name}' (have: {', '.join(presets)})")
    return [f"-S {task}.{key}={_compact(value)}" for key, value in flatten(presets[name]).items()]


def _compact(value: object) -> str:
    """Lists without spaces, so `$(...)` in a shell keeps each `-S` argument whole."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list) else str(value)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m stages.common.preset <task> <preset>")
    print(" ".join(preset_args(sys.argv[1], sys.argv[2])))
