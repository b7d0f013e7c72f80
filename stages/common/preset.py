"""Apply named presets from presets/<task>.yaml to `dvc exp run`, the same in bash and zsh.

    python -m stages.common.preset pokemon strong --run                      # runs: dvc exp run -S pokemon.… …
    python -m stages.common.preset pokemon course --run -S pokemon.train.max_minutes=15 --temp
    python -m stages.common.preset mini-imagenet real64 dynconv real64 --run # several presets at once
    python -m stages.common.preset pokemon strong --print                    # the arguments, shell-quoted

`--run [ARGS...]` calls `dvc exp run` itself with an argument list (no shell: nothing is split, globbed or
re-quoted) and passes ARGS after the preset's. `--print [ARGS...]` prints the same arguments quoted for a POSIX
shell (bash and zsh alike: `eval "dvc exp run $(python -m stages.common.preset pokemon strong --print)"`). With
neither, it prints the old unquoted form for `dvc exp run $(...)`, which relies on the shell splitting it into
words and leaving the `[1,2,2]` globs alone (bash's nullglob drops them) and breaks on values with spaces: use
`--run` instead.

A preset's top-level key that names another section of params.yaml (twolayer's `mini-imagenet:`) sets that
section; every other key is a key of the task's own section. Values are written in the override syntax of
`dvc exp run -S`: lists as `[1,2]` (a string written as "[1,2]" is passed as it is), other strings quoted
when they hold anything but plain path characters.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from stages.common.params import flatten

_PLAIN = re.compile(r"^[A-Za-z_./~][A-Za-z0-9_./:@%+\-]*$")  # needs no quotes in -S (e.g. dir:../shared/data/x)
_LITERALS = {"true", "false", "null", "nan", "inf", "-inf", "+inf"}


def overrides(task: str, name: str, root: str | Path = ".") -> list[str]:
    """The preset `name` of `task` as `key=value` overrides (each one `-S` argument of `dvc exp run`)."""
    path = Path(root) / "presets" / f"{task}.yaml"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no presets for task '{task}'")
    presets = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if name not in presets:
        raise SystemExit(f"error: {path}: no preset '{name}' (have: {', '.join(presets)})")
    preset = presets[name] or {}
    sections = _sections(Path(root) / "params.yaml")
    own = sections.get(task) or {}
    out = []
    for top, value in preset.items():
        where = top if top in sections and top != task and top not in own else f"{task}.{top}"
        items = flatten(value).items() if isinstance(value, dict) else [("", value)]
        out += [f"{where}{'.' + key if key else ''}={_value(v)}" for key, v in items]
    return out


def preset_args(task: str, name: str, root: str | Path = ".") -> list[str]:
    """The old form: one `-S key=value` string per override, for `dvc exp run $(...)` in bash."""
    return [f"-S {item}" for item in overrides(task, name, root)]


def dvc_args(pairs: Sequence[tuple[str, str]], root: str | Path = ".") -> list[str]:
    """`-S`, `key=value`, … for every preset in `pairs` ((task, name), …), in order."""
    return [arg for task, name in pairs for item in overrides(task, name, root) for arg in ("-S", item)]


def shell_line(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def _sections(params: Path) -> dict:
    if not params.is_file():
        return {}
    data = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def _value(value: object) -> str:
    """One value in `-S` override syntax: lists compact, strings quoted unless plain."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    if isinstance(value, str):
        if value.startswith("[") and value.endswith("]"):  # a list already in -S syntax (presets/ddpm.yaml's)
            return value
        if _PLAIN.match(value) and value.lower() not in _LITERALS and not _number(value):
            return value
        # Hydra's quoting (what -S parses): a quote is escaped, and so are the backslashes before a quote or the end
        body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
        return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body) + "'"
    return str(value)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


USAGE = "usage: python -m stages.common.preset <task> <preset> [<task> <preset> ...] [--run | --print] [ARGS...]"


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = next((a for a in argv if a in ("--run", "--print")), None)
    names, extra = (argv[: argv.index(mode)], argv[argv.index(mode) + 1 :]) if mode else (argv, [])
    if not names or len(names) % 2:
        raise SystemExit(USAGE)
    pairs = list(zip(names[::2], names[1::2], strict=True))
    if mode is None:
        print(" ".join(item for task, name in pairs for item in preset_args(task, name)))
        return
    args = [*dvc_args(pairs), *extra]
    if mode == "--print":
        print(shell_line(args))
        return
    print(f"$ dvc exp run {shell_line(args)}", file=sys.stderr, flush=True)
    sys.exit(subprocess.call([sys.executable, "-m", "dvc", "exp", "run", *args]))


if __name__ == "__main__":
    main()
