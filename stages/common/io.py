"""Safe file I/O: atomic writes, JSON/CSV helpers and the one error type for bad input."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class DataError(Exception):
    """Bad input data. The message names the file and the problem; stages print it without a traceback."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success rename it onto `path`, on failure remove it.

    Works for files and directories alike: whatever the caller creates at the
    temporary path replaces `path` in one rename, so a reader never sees half an output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"{path}: nothing was written")
        remove(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def remove(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


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


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


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
