"""dvc.yaml declares what the mygo stage modules import (the stage contract), and params.yaml loads."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from stages.mygo import config

REPO = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = {"stages/common/cli.py", "stages/common/io.py", "stages/common/params.py", "stages/common/tracking.py"}


def imported_files(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stages."):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                path = Path(*name.split(".")).with_suffix(".py")
                if (REPO / path).is_file():
                    found.add(path.as_posix())
    return found - INFRASTRUCTURE


def test_stage_deps_cover_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    mygo = {name: s for name, s in stages.items() if name.startswith("mygo-")}
    assert set(mygo) == {f"mygo-{s}" for s in ("download", "prepare", "train", "predict", "evaluate", "package")}
    assert "matrix" in mygo["mygo-train"]
    for name, stage in mygo.items():
        module = REPO / "stages" / "mygo" / f"{name.removeprefix('mygo-')}.py"
        missing = imported_files(module) - set(stage["deps"])
        assert not missing, f"{name}: imports {missing} but dvc.yaml does not list them as deps"


def test_params_yaml_mygo_section_is_valid():
    p, _ = config.load(REPO / "params.yaml")
    assert p.data.source == "sample" and len(p.ensemble) >= 2
    for name in p.models:
        p.model(name)
