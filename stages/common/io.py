"""Safe file I/O: atomic writes, JSON/CSV helpers, user-named paths and the one error type for bad input."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


class DataError(Exception):
    """Bad input data. The message names the file and the problem; stages print it without a traceback."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success rename it onto `path`, on failure remove it.

    Works for files and folders alike: whatever the caller creates at the temporary path replaces `path` in
    one rename, so a reader never sees half an output. It replaces like with like only: a file (or a link,
    never its target) with a file, a folder with a folder; a folder where a file was written, or a file
    where a folder was, is a DataError and nothing is removed. A parent folder that cannot be created or
    written is a DataError naming it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise DataError(f"{path.parent}: cannot write here ({err.strerror})") from None
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"{path}: nothing was written")
        _replace(target, path, aside=tmp / f"{path.name}.old")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kind(path: Path) -> str:
    return "link" if path.is_symlink() else "folder" if path.is_dir() else "file"


def _replace(new: Path, path: Path, aside: Path) -> None:
    """Rename `new` onto `path`; a folder already there is first moved to `aside` (inside the scratch folder,
    removed with it) and moved back if the rename fails."""
    if not (path.exists() or path.is_symlink()):
        os.replace(new, path)
        return
    old, made = _kind(path), _kind(new)
    if (old == "folder") != (made == "folder"):
        raise DataError(f"{path}: is a {old}; will not replace it with a {made} (move it away first)")
    if old != "folder":
        os.replace(new, path)
        return
    os.replace(path, aside)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(aside, path)
        raise


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of `path` that an interrupted `atomic_path` left behind.

    A temporary folder is named `.<name>.<pid>.<random>.tmp`; it is stale once its process is gone
    (folders from before the pid was part of the name are always stale). Returns what was removed.
    """
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(\d+)\.)?[A-Za-z0-9_]{{8}}\.tmp$")
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not (match.group(1) and _alive(int(match.group(1)))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # a nested atomic_path of this very process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def require_file(path: str | Path, made_by: str = "") -> Path:
    """`path` if it is a file; else a DataError naming it (and the stage that writes it, when given)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (f"; run {made_by} first" if made_by else ""))
    return path


def read_text(path: str | Path, encoding: str = "utf-8", name: str | Path | None = None) -> str:
    """The text of a user's file; a missing file or bytes that are not `encoding` are a DataError naming
    `name` (default: `path`; pass the user's own path when `path` is a copy) and the line."""
    path = Path(path)
    shown = name if name is not None else path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{shown}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a folder, expected a file") from None
    except OSError as err:
        raise DataError(f"{shown}: cannot be read ({err.strerror})") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{shown}:{line}: not {encoding.upper().replace('-SIG', '')} text (byte 0x{data[err.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def read_json(path: str | Path, name: str | Path | None = None) -> Any:
    """The JSON value in a user's file (UTF-8, a byte-order mark allowed); anything that is not strict JSON
    (bad syntax, NaN or Infinity, nesting too deep for the parser, an integer of over 4300 digits) is a
    one-line DataError naming `name` (default: `path`)."""
    shown = name if name is not None else path

    def refuse_constant(word: str) -> None:
        raise DataError(f"{shown}: {word} is not a JSON number; write a finite number or null")

    text = read_text(path, "utf-8-sig", name=shown)
    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as err:
        raise DataError(f"{shown}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from None
    except RecursionError:
        raise DataError(f"{shown}: not valid JSON here (nested too deeply)") from None
    except ValueError as err:  # int() refuses a number of over 4300 digits
        raise DataError(f"{shown}: not valid JSON here ({str(err).splitlines()[0]})") from None


def resolve_inside(root: str | Path, name: str | Path, *, what: str | Path | None = None) -> Path:
    """`root / name` for a file name a user's file gives (a CSV row's file column, a list line); a DataError
    naming `what` (default: `root`) when `name` is absolute, has a `..` part, or resolves (following symlinks)
    outside `root`."""
    root, rel, shown = Path(root), Path(name), what or root
    if "\0" in str(name):
        raise DataError(f"{shown}: {str(name)!r} is not a file name (it holds a NUL byte)")
    path = root / rel
    if rel.is_absolute() or ".." in rel.parts or not is_inside(path, root, shown):
        raise DataError(f"{shown}: '{name}' leaves {root}")
    return path


def is_inside(path: Path, root: Path, shown: str | Path) -> bool:
    """Whether `path` resolves (following symlinks) to `root` or below it; a symlink loop is a DataError."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # Python 3.11 reports a symlink loop as RuntimeError, later ones as OSError
        raise DataError(f"{shown}: '{path}' is a symlink loop") from None


def check_output(path: str | Path, *, inputs: Iterable[str | Path] = (), key: str = "--output") -> Path:
    """`path`, a file the user named for an output, unless it is an existing folder or the same file as one of
    `inputs` (a DataError: writing there would destroy the folder or the input)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; {key} must name a file")
    for given in inputs:
        if _same_file(path, Path(given)):
            raise DataError(f"{path}: is also an input; choose another {key}")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], fieldnames: Sequence[str] | None = None) -> None:
    fieldnames = list(fieldnames or (rows[0].keys() if rows else []))
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: str | Path) -> str:
    return file_digest(path, "md5")


def file_sha256(path: str | Path) -> str:
    return file_digest(path, "sha256")
