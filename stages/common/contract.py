"""The stage contract, checked: a stage's code deps are the project files its module imports.

`dvc.yaml` must declare, for every stage, exactly the files under `stages/` that its
`python -m stages.<task>.<step>` module imports, directly or through other project
modules, with imports inside functions counted too (heavy or lazy imports are still
code the stage runs). Empty `__init__.py` files are left out. The params side of the
contract is recorded at run time (`stages.common.params.recording`) and compared here
with `params_problems`.

    python -m stages.common.contract          # list the problems, exit 1 if any
    python -m stages.common.contract --fix    # rewrite the stages/ deps in dvc.yaml
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

MODULE = re.compile(r"python -m (stages(?:\.\w+)+)")


def module_file(root: Path, module: str) -> Path | None:
    """The file behind a dotted `stages.…` name (a module or a package's `__init__.py`), or None."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def direct_imports(root: Path, path: Path) -> set[Path]:
    """Project files named by every import statement in `path`, at any depth of the code."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "stages" or name.startswith("stages."):
                parts = name.split(".")
                # `import stages.a.b` runs stages/__init__.py and stages/a/__init__.py too
                for i in range(1, len(parts) + 1):
                    file = module_file(root, ".".join(parts[:i]))
                    if file is not None:
                        found.add(file)
    return found


def closure(root: Path, module: str) -> set[str]:
    """Every non-empty project file that running `python -m module` imports, as repo-relative posix paths."""
    start = module_file(root, module)
    if start is None:
        raise FileNotFoundError(f"no module {module} under {root}")
    seen: set[Path] = set()
    todo = [start]
    parts = module.split(".")
    todo += [f for i in range(1, len(parts)) if (f := module_file(root, ".".join(parts[:i])))]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(direct_imports(root, path) - seen)
    return {p.relative_to(root).as_posix() for p in seen if p.stat().st_size > 0}


def stage_modules(root: Path) -> dict[str, str]:
    """Stage name (as written in dvc.yaml, before matrix expansion) → the module its cmd runs."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = {}
    for name, stage in stages.items():
        match = MODULE.search(stage.get("cmd", ""))
        if match:
            out[name] = match.group(1)
    return out


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith("stages/")}


def deps_problems(root: str | Path = ".") -> list[str]:
    """One line per stage whose declared `stages/` deps differ from its module's import closure."""
    root = Path(root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    problems = []
    for name, module in stage_modules(root).items():
        want = closure(root, module)
        have = code_deps(stages[name])
        if missing := sorted(want - have):
            problems.append(f"{name}: imports but does not declare {', '.join(missing)}")
        if extra := sorted(have - want):
            problems.append(f"{name}: declares but does not import {', '.join(extra)}")
    return problems


def covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def params_problems(stage: str, read: set[str], declared: list[str]) -> list[str]:
    """Keys the stage read but does not declare, and declared entries it never read."""
    problems = [
        f"{stage}: reads params key '{k}' but does not declare it" for k in sorted(read) if not covered(k, declared)
    ]
    for d in declared:
        if not any(k == d or k.startswith(d + ".") or d.startswith(k + ".") for k in read):
            problems.append(f"{stage}: declares params '{d}' but never reads it")
    return problems


def fix(root: str | Path = ".") -> int:
    """Rewrite each stage's `stages/` deps in dvc.yaml as its import closure (sorted, first); returns stages changed."""
    root = Path(root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    modules = stage_modules(root)
    lines = (root / "dvc.yaml").read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    changed = 0
    stage = None
    in_deps = False
    for line in lines:
        if m := re.match(r"^  ([\w@.-]+):\s*$", line):
            stage, in_deps = m.group(1), False
        elif re.match(r"^    deps:\s*$", line) and stage in modules:
            in_deps = True
            out.append(line)
            want = sorted(closure(root, modules[stage]))
            changed += want != sorted(code_deps(stages[stage]))
            out.extend(f"      - {path}" for path in want)
            continue
        elif in_deps and not line.startswith("      "):
            in_deps = False
        if in_deps and re.match(r"^      - stages/", line):
            continue
        out.append(line)
    (root / "dvc.yaml").write_text("\n".join(out) + "\n", encoding="utf-8")
    return changed


def main(argv: list[str]) -> int:
    if argv == ["--fix"]:
        print(f"dvc.yaml: rewrote the code deps of {fix()} stages")
        return 0
    problems = deps_problems()
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
