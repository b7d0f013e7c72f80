"""No file a user is given can run code: the project's code never reads one through a loader that executes it.

Scans every Python file under stages/ and benchmarks/ (by its syntax tree, so comments and strings do not count)
and fails, naming file:line, on: `weights_only=False`; `torch.load(...)` without `weights_only=True`;
`pickle.load`/`pickle.loads`/`pickle.Unpickler(...)` and the other pickle readers (dill, joblib, pandas'
read_pickle, shelve, marshal) — a restricted `pickle.Unpickler` subclass that defines `find_class` is the one
allowed way (vit reads CIFAR-10's own pickled batches with one); `yaml.load` without a safe Loader,
`yaml.unsafe_load`, `yaml.full_load`; `np.load(..., allow_pickle=True)`; the builtins `eval` and `exec`;
`trust_remote_code=True`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PICKLE_READERS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("_pickle", "load"),
                  ("_pickle", "loads"), ("cPickle", "load"), ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"),
                  ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"), ("shelve", "open"),
                  ("marshal", "load"), ("marshal", "loads")}  # fmt: skip
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def dotted(node: ast.AST) -> str:
    """`torch.load` for the expression torch.load; '' for anything that is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def problems_in(source: str, name: str) -> list[str]:
    """'name:line: what' for every unsafe loader in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ClassDef):
            unpickler = any(dotted(b) in ("pickle.Unpickler", "Unpickler") for b in node.bases)
            restricted = any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body)
            if unpickler and not restricted:
                found.append(f"{where}: pickle.Unpickler subclass {node.name} without find_class (not restricted)")
        if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "_pickle", "dill", "marshal"):
            found += [f"{where}: from {node.module} import {a.name}" for a in node.names if a.name in ("load", "loads")]
        if not isinstance(node, ast.Call):
            continue
        func = dotted(node.func)
        parts = tuple(func.rsplit(".", 1)) if "." in func else ("", func)
        if is_const(keyword(node, "weights_only"), False):
            found.append(f"{where}: weights_only=False")
        elif func == "torch.load" and not is_const(keyword(node, "weights_only"), True):
            found.append(f"{where}: torch.load without weights_only=True")
        if parts in PICKLE_READERS:
            found.append(f"{where}: {func} (use a restricted pickle.Unpickler subclass, or a format that is data)")
        if parts[0] == "yaml" and parts[1] in UNSAFE_YAML:
            found.append(f"{where}: {func}")
        if parts[0] == "yaml" and parts[1] in ("load", "load_all"):
            loader = keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                found.append(f"{where}: {func} without a safe Loader (use yaml.safe_load)")
        allow_pickle = keyword(node, "allow_pickle")
        if func in ("np.load", "numpy.load") and allow_pickle is not None and not is_const(allow_pickle, False):
            found.append(f"{where}: {func} with allow_pickle")
        if func in ("eval", "exec"):
            found.append(f"{where}: {func}()")
        if is_const(keyword(node, "trust_remote_code"), True):
            found.append(f"{where}: trust_remote_code=True")
    return found


def project_files() -> list[Path]:
    return sorted(p for folder in ("stages", "benchmarks") for p in (ROOT / folder).rglob("*.py"))


def test_no_unsafe_loader_in_stages_or_benchmarks() -> None:
    found = [p for f in project_files() for p in problems_in(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert not found, "unsafe loaders (a user's file could run code):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        "torch.load(f, map_location='cpu', weights_only=False)",
        "torch.load(f)",
        "torch.load(f, weights_only=flag)",
        "x = pickle.load(f)",
        "pickle.loads(data)",
        "pickle.Unpickler(f).load()",
        "from pickle import loads",
        "joblib.load(p)",
        "pd.read_pickle(p)",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.load(text, yaml.FullLoader)",
        "yaml.unsafe_load(text)",
        "yaml.full_load(text)",
        "np.load(p, allow_pickle=True)",
        "eval('1 + 1')",
        "exec(code)",
        "AutoModel.from_pretrained(name, trust_remote_code=True)",
        "class Loose(pickle.Unpickler):\n    pass",
    ],
)
def test_the_scan_finds_each_unsafe_loader(code: str) -> None:
    assert problems_in(code, "x.py"), code


@pytest.mark.parametrize(
    "code",
    [
        "torch.load(f, map_location='cpu', weights_only=True)",
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.load(text, yaml.CSafeLoader)",
        "np.load(p)",
        "np.load(p, allow_pickle=False)",
        "model.eval()",
        "ast.literal_eval(s)",
        "class Cifar(pickle.Unpickler):\n    def find_class(self, module, name):\n        raise Exception\n"
        "Cifar(f).load()",
        "# torch.load(f, weights_only=False) in a comment",
        "'pickle.load(f) in a string'",
    ],
)
def test_the_scan_lets_safe_code_pass(code: str) -> None:
    assert not problems_in(code, "x.py"), code
