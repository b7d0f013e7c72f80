"""Changes that turn one file of a valid source folder into a bad (or oddly good) one.

A Mutation changes the source folder in place; `outside` is a sibling folder (never part of the source) that
path tricks point into. `must_refuse`: the stage has to stop with an error (a path or link out of the source,
a pickle that would run code); `must_accept`: the input is still valid (CRLF line ends, a link that stays
inside the source) and the stage has to succeed. Every other mutation may go either way; the contract decides.

`mutation(source)` draws one (Hypothesis) among byte flips, truncation, other encodings, BOM, NUL, lines,
tokens (NaN, huge numbers, path tricks), JSON values, CSV columns, odd image modes and bombs, HDF5 datasets,
parquet cells and CIFAR pickles. The policy ones (`link_out`, `link_in`, `crlf`, `escape`) are not drawn:
test_fuzz_inputs.py applies every one of them to every file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from fuzz.formats import bomb_png, grey16_png, image_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TEXT_SUFFIXES = (".txt", ".json", ".csv")
SECRET = "secret.png"  # a valid image in `outside`: a path trick that reaches it must not be read
MARKER = "code-ran"  # created in `outside` by a crafted pickle if it is ever unpickled unsafely

# Tokens a user's text file may hold where a number, a label or a path should be.
TOKENS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1", "0", "99999999999999999999999", "1.5", "1_0",
          "١", "²", "0x10", "", " ", "\t", "null", "[]", "{}", "true", "é", "a,b", '"', "../secret.png",
          "/etc/passwd", "C:\\x.png", "~/x.png"]  # fmt: skip
# JSON values where a valid one was: non-finite and huge numbers, wrong types, deep nesting.
JSON_VALUES = [float("nan"), float("inf"), float("-inf"), 10**30, -1, 0, 1.5, "", "nan", None, True, [], {}, [1, 2],
               {"a": 1}, "../secret.png", "x" * 10_000, "DEEP"]  # fmt: skip
# (mode, format) pairs PIL writes: every odd mode a user's image may come in.
IMAGE_MODES = [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF"), ("I", "TIFF"), ("F", "TIFF"), ("P", "PNG"),
               ("P", "GIF"), ("PA", "TIFF"), ("LA", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("CMYK", "TIFF"),
               ("1", "PNG"), ("L", "PNG"), ("L", "JPEG"), ("YCbCr", "TIFF"), ("LAB", "TIFF"), ("RGB", "WEBP"),
               ("RGB", "BMP")]  # fmt: skip


@dataclasses.dataclass
class Mutation:
    what: str  # shown by Hypothesis for a failing example
    apply: Callable[[Path, Path], None]  # (source folder, outside folder)
    must_refuse: bool = False
    must_accept: bool = False


def outside_folder(outside: Path) -> None:
    """What path tricks point at: a valid image and a text file, in a folder beside the source."""
    outside.mkdir(parents=True)
    (outside / SECRET).write_bytes(image_bytes(seed=999))
    (outside / "secret.txt").write_text("not the user's data\n")


def source_files(source: Path) -> list[str]:
    return sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file() and not p.is_symlink())


def mutation(source: Path) -> st.SearchStrategy[Mutation]:
    """A mutation of one file of `source`, chosen among those its kind allows."""
    return st.sampled_from(source_files(source)).flatmap(lambda rel: file_mutation(source, rel))


def file_mutation(source: Path, rel: str) -> st.SearchStrategy[Mutation]:
    path = source / rel
    suffix = path.suffix.lower()
    kinds = [generic(path, rel)]
    if suffix in TEXT_SUFFIXES:
        kinds.append(text(path, rel))
    if suffix == ".json":
        kinds.append(json_value(path, rel))
    if suffix == ".csv":
        kinds.append(csv_columns(path, rel))
    if suffix in IMAGE_SUFFIXES:
        kinds.append(image(path, rel))
    if suffix == ".h5":
        kinds.append(hdf5(path, rel))
    if suffix == ".parquet":
        kinds.append(parquet(path, rel))
    if path.name.startswith(("data_batch_", "test_batch")):
        kinds.append(cifar_pickle(path, rel))
    return st.one_of(kinds)


# ---------------------------------------------------------------- any file


def generic(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    size = path.stat().st_size
    data = path.read_bytes()

    def write(new: bytes) -> Callable[[Path, Path], None]:
        return lambda source, outside: (source / rel).write_bytes(new)

    def flip(i: int, x: int) -> Mutation:
        return Mutation(f"{rel}: byte {i} xor {x:#04x}", write(data[:i] + bytes([data[i] ^ x]) + data[i + 1 :]))

    def to_folder(source: Path, outside: Path) -> None:
        (source / rel).unlink()
        (source / rel).mkdir()
        (source / rel / "inside.txt").write_text("a folder where a file was\n")

    return st.one_of(
        st.builds(flip, st.integers(0, max(size - 1, 0)), st.integers(1, 255)) if size else st.nothing(),
        st.integers(0, max(size - 1, 0)).map(lambda n: Mutation(f"{rel}: cut to {n} bytes", write(data[:n]))),
        st.binary(min_size=1, max_size=64).map(lambda b: Mutation(f"{rel}: + {b!r}", write(data + b))),
        st.just(Mutation(f"{rel}: deleted", lambda source, outside: (source / rel).unlink())),
        st.just(Mutation(f"{rel}: a folder", to_folder)),
    )


def link_out(rel: str) -> Mutation:
    """The file moved out of the source, a link to it in its place: following it would read outside the source."""

    def apply(source: Path, outside: Path) -> None:
        shutil.move(source / rel, outside / "moved")
        (source / rel).symlink_to(outside / "moved")

    return Mutation(f"{rel}: a link out of the source", apply, must_refuse=True)


def link_in(rel: str) -> Mutation:
    """The file renamed to a hidden sibling that no loader reads (`.<name>.orig`), a link to it in its place."""

    def apply(source: Path, outside: Path) -> None:
        hidden = (source / rel).with_name(f".{Path(rel).name}.orig")
        (source / rel).rename(hidden)
        (source / rel).symlink_to(hidden.name)

    return Mutation(f"{rel}: a link to a hidden sibling", apply, must_accept=True)


def crlf(rel: str) -> Mutation:
    """Windows line ends: the same text, still valid."""

    def apply(source: Path, outside: Path) -> None:
        text = (source / rel).read_bytes().replace(b"\r\n", b"\n")
        (source / rel).write_bytes(text.replace(b"\n", b"\r\n"))

    return Mutation(f"{rel}: CRLF line ends", apply, must_accept=True)


# ---------------------------------------------------------------- text


def text(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    data = path.read_bytes()
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError:
        return st.nothing()
    lines = body.splitlines(keepends=True) or [""]

    def put(new: str | bytes, what: str, **flags) -> Mutation:
        raw = new if isinstance(new, bytes) else new.encode("utf-8")
        return Mutation(f"{rel}: {what}", lambda source, outside: (source / rel).write_bytes(raw), **flags)

    def encoded(encoding: str, at: int) -> Mutation:
        return put((body[:at] + "é" + body[at:]).encode(encoding), f"é at {at}, saved as {encoding}")

    def token(i: int, k: int, new: str) -> Mutation:
        """The k-th token of line i (counting round) replaced by `new`."""
        spans = [m.span() for m in re.finditer(r'[^\s,"\[\]{}:]+', lines[i])] or [(0, 0)]
        a, b = spans[k % len(spans)]
        line = lines[i][:a] + new + lines[i][b:]
        return put("".join([*lines[:i], line, *lines[i + 1 :]]), f"line {i + 1}: {lines[i][a:b]!r} -> {new!r}")

    def line_op(op: str, i: int) -> Mutation:
        new = list(lines)
        if op == "delete":
            del new[i]
        elif op == "duplicate":
            new.insert(i, lines[i])
        elif op == "blank":
            new.insert(i, "\n")
        else:  # swap with the next
            new[i : i + 2] = new[i : i + 2][::-1]
        return put("".join(new), f"line {i + 1}: {op}")

    return st.one_of(
        st.builds(
            encoded, st.sampled_from(["latin-1", "utf-16", "utf-16-le", "utf-32", "cp1252"]), st.integers(0, len(body))
        ),  # fmt: skip
        st.just(put(b"\xef\xbb\xbf" + data, "a UTF-8 byte-order mark")),
        st.integers(0, len(body)).map(lambda at: put(body[:at] + "\x00" + body[at:], f"NUL at {at}")),
        st.builds(line_op, st.sampled_from(["delete", "duplicate", "blank", "swap"]), st.integers(0, len(lines) - 1)),
        st.builds(token, st.integers(0, len(lines) - 1), st.integers(0, 400), st.sampled_from(TOKENS)),
    )


def json_value(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    """One value of the JSON document replaced (NaN, huge, wrong type, 100,000 nested '['), or its key removed."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return st.nothing()
    places = list(json_places(doc))[:500]

    def replace(where: tuple, value: object) -> Mutation:
        def apply(source: Path, outside: Path) -> None:
            new = set_at(json.loads(json.dumps(doc)), where, value)
            text = json.dumps(new, allow_nan=True)  # NaN and Infinity as the literals some writers emit
            text = text.replace('"DEEP"', "[" * 100_000 + "]" * 100_000)
            (source / rel).write_text(text, encoding="utf-8")

        return Mutation(f"{rel}: {'/'.join(map(str, where))} -> {str(value)[:20]!r}", apply)

    return (
        st.builds(replace, st.sampled_from(places), st.sampled_from([*JSON_VALUES, DELETE])) if places else st.nothing()
    )


DELETE = "<delete>"


def json_places(doc: object, where: tuple = ()):
    yield where
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from json_places(value, (*where, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:20]):
            yield from json_places(value, (*where, i))


def set_at(doc: object, where: tuple, value: object) -> object:
    """`doc` with the value at `where` replaced by `value` (or removed, for DELETE; the whole document: emptied)."""
    if not where:
        return type(doc)() if value == DELETE else value
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if value == DELETE:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return doc


def csv_columns(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    """A column dropped from, or added to, every row; or the header row dropped."""
    import csv

    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    except UnicodeDecodeError:
        return st.nothing()
    width = max((len(r) for r in rows), default=0)

    def rewrite(new_rows: list[list[str]], what: str) -> Mutation:
        def apply(source: Path, outside: Path) -> None:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(new_rows)
            (source / rel).write_text(buffer.getvalue(), encoding="utf-8")

        return Mutation(f"{rel}: {what}", apply)

    return st.one_of(
        st.integers(0, max(width - 1, 0)).map(
            lambda c: rewrite([r[:c] + r[c + 1 :] for r in rows], f"column {c} dropped")
        ),
        st.just(rewrite([[*r, "extra"] for r in rows], "an extra column")),
        st.just(rewrite(rows[1:], "first row dropped")),
    )


# ---------------------------------------------------------------- paths in list files


def utf8(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False
    return True


def listed_lines(path: Path) -> list[int]:
    """The lines of a list file that name an image and a label (0-based); none for a list of images only."""
    lines = path.read_text(encoding="utf-8").splitlines()
    sep = separator(path)
    return [i for i, line in enumerate(lines) if sep in line and any(e in line for e in IMAGE_SUFFIXES)]


def separator(path: Path) -> str:
    return "," if path.suffix == ".csv" else " "


ESCAPES = ("dotdot", "absolute", "link")


def escape(rel: str, i: int, how: str) -> Mutation:
    """Line i of a list file names the image outside the source: by `..`, by an absolute path, or through a
    link inside the source that points out of it."""

    def apply(source: Path, outside: Path) -> None:
        listing = (source / rel).parent
        if how == "dotdot":
            new = os.path.relpath(outside / SECRET, listing)
        elif how == "absolute":
            new = str(outside / SECRET)
        else:
            (listing / "link.png").symlink_to(outside / SECRET)
            new = "link.png"
        lines = (source / rel).read_text(encoding="utf-8").splitlines(keepends=True)
        _, rest = lines[i].split(separator(source / rel), 1)
        lines[i] = f"{new}{separator(source / rel)}{rest}"
        (source / rel).write_text("".join(lines), encoding="utf-8")

    return Mutation(f"{rel}: line {i + 1} names an image out of the source ({how})", apply, must_refuse=True)


# ---------------------------------------------------------------- images


def image(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    from PIL import Image

    with Image.open(path) as img:
        size = img.size

    def put(data: bytes, what: str) -> Mutation:
        return Mutation(f"{rel}: {what}", lambda source, outside: (source / rel).write_bytes(data))

    return st.one_of(
        st.sampled_from(IMAGE_MODES).map(lambda m: put(image_bytes(m[0], size, 7, m[1]), f"{m[0]} as {m[1]}")),
        st.sampled_from([(1, 1), (size[0] + 1, size[1]), (size[0] * 3, 2)]).map(
            lambda s: put(image_bytes("RGB", s, 7), f"{s[0]}×{s[1]}")
        ),
        st.just(put(grey16_png(0.46, size), "16-bit grey at 46%")),
        st.sampled_from([(30000, 30000), (12000, 12000)]).map(lambda s: put(bomb_png(*s), f"a {s[0]}×{s[1]} bomb")),
    )


# ---------------------------------------------------------------- HDF5, parquet, pickle


def hdf5(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    """One dataset replaced: NaN, inf, -1 or a huge value in it, another dtype or shape, or no rows."""
    import h5py

    with h5py.File(path, "r") as f:
        keys = sorted(f.keys())
    changes = {
        "a NaN": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a.astype(np.float64)),
        "an inf": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.inf, a.astype(np.float64)),
        "a -1": lambda a: np.where(np.arange(a.size).reshape(a.shape) == a.size - 1, -1, a),
        "a 2**40": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, 2**40, a.astype(np.int64)),
        "float64": lambda a: a.astype(np.float64),
        "strings": lambda a: a.astype("S8"),
        "one axis": lambda a: a.reshape(-1),
        "an extra axis": lambda a: a[..., None],
        "no rows": lambda a: a[:0],
    }

    def replace(key: str, change: str) -> Mutation:
        def apply(source: Path, outside: Path) -> None:
            with h5py.File(source / rel, "a") as f:
                new = changes[change](f[key][()])
                del f[key]
                f[key] = new

        return Mutation(f"{rel}: '{key}' with {change}", apply)

    return st.builds(replace, st.sampled_from(keys), st.sampled_from(sorted(changes)))


def parquet(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    """One cell or one column changed: an image that is garbage, a bomb, or an odd mode; a caption or idx of the
    wrong type; a column gone; no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows, columns = table.to_pylist(), table.column_names
    cells = {
        "garbage bytes": b"not an image",
        "a bomb": bomb_png(),
        "16-bit grey": grey16_png(),
        "CMYK": image_bytes("CMYK", (16, 16), 3, "JPEG"),
        "palette": image_bytes("P", (16, 16), 3, "PNG"),
        "None": None,
        "''": "",
        "NaN": float("nan"),
        "2**70": str(2**70),
    }

    def write(new_rows: list[dict], source: Path) -> None:
        pq.write_table(pa.Table.from_pylist(new_rows), source / rel)

    def cell(i: int, column: str, value: str) -> Mutation:
        def apply(source: Path, outside: Path) -> None:
            new = [dict(r) for r in rows]
            old = new[i][column]
            v = cells[value]
            if isinstance(old, dict) and isinstance(v, bytes):
                v = {**old, "bytes": v}
            # a column keeps one type: a value of another type turns the whole column into strings
            numbers = isinstance(v, (int, float)) and isinstance(old, (int, float))
            same = v is None or numbers or isinstance(v, type(old))
            new[i][column] = v
            if not same:
                for r in new:
                    r[column] = None if r[column] is None else str(r[column])
            write(new, source)

        return Mutation(f"{rel}: row {i} {column} -> {value}", apply)

    def drop(column: str) -> Mutation:
        return Mutation(f"{rel}: column {column} dropped",
                        lambda source, outside: write([{k: v for k, v in r.items() if k != column} for r in rows], source))  # fmt: skip

    def no_rows(source: Path, outside: Path) -> None:
        pq.write_table(table.slice(0, 0), source / rel)

    return st.one_of(
        st.builds(cell, st.integers(0, len(rows) - 1), st.sampled_from(columns), st.sampled_from(sorted(cells))),
        st.sampled_from(columns).map(drop),
        st.just(Mutation(f"{rel}: no rows", no_rows)),
    )


class RunsCode:
    """Unpickled unsafely, creates `marker`: the proof a user's file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def cifar_pickle(path: Path, rel: str) -> st.SearchStrategy[Mutation]:
    """A CIFAR batch with bad content, or a pickle that would run code (it must be refused and never run)."""
    batch = pickle.loads(path.read_bytes())  # the test's own valid file
    n = len(batch[b"labels"])
    changes = {
        "data N×100": lambda b: {**b, b"data": b[b"data"][:, :100]},
        "data float with NaN": lambda b: {**b, b"data": np.full(b[b"data"].shape, np.nan)},
        "label 10": lambda b: {**b, b"labels": [10] * n},
        "label -1": lambda b: {**b, b"labels": [-1] * n},
        "label 10**20": lambda b: {**b, b"labels": [10**20] * n},
        "one label short": lambda b: {**b, b"labels": b[b"labels"][:-1]},
        "no labels": lambda b: {b"data": b[b"data"]},
        "a list": lambda b: [b[b"data"]],
    }

    def change(name: str) -> Mutation:
        return Mutation(f"{rel}: {name}",
                        lambda source, outside: (source / rel).write_bytes(pickle.dumps(changes[name](batch), protocol=2)))  # fmt: skip

    def crafted(source: Path, outside: Path) -> None:
        (source / rel).write_bytes(pickle.dumps({b"data": RunsCode(outside / MARKER), b"labels": []}, protocol=2))

    return st.one_of(
        st.sampled_from(sorted(changes)).map(change),
        st.just(Mutation(f"{rel}: a pickle that runs a command", crafted, must_refuse=True)),
    )
