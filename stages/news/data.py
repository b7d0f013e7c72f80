"""Reading the news task's inputs into one validated form, and that form on disk (data/news/raw).

Inputs understood:
- the course's files: `News_train.json`, `News_test.json` (a JSON list of objects, JSON lines,
  or a JSON object of columns) and optionally `submission.csv` (the competition's format);
  text/label/id field names are params;
- AG News CSV: the original release (`"<class 1..4>","<title>","<description>"`, `classes.txt`)
  or the Hugging Face two-column form (`"<title> <description>",<label 0..3>`, `class.txt`):
  `train.csv` plus `test.csv` and/or `dev.csv`.

The raw folder holds `train.jsonl`, `test.jsonl`, optionally `dev.jsonl` (one
`{"id", "text", "label"}` per line; test labels may be null) and `meta.json`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.io import DataError, atomic_path, read_json, read_text, write_json

COURSE_FILES = ("News_train.json", "News_test.json")


@dataclasses.dataclass
class Row:
    id: str
    text: str
    label: str | None


@dataclasses.dataclass
class Dataset:
    train: list[Row]
    test: list[Row]
    dev: list[Row] | None = None
    classes: list[str] = dataclasses.field(default_factory=list)  # label values as in the source
    class_names: list[str] = dataclasses.field(default_factory=list)  # readable names, same order
    id_column: str = "id"
    label_column: str = "label"
    format: str = ""


# ---------------------------------------------------------------- the course's JSON files


def read_records(path: Path) -> list[dict[str, Any]]:
    """A JSON list of objects, JSON lines, or an object of columns (lists or {index: value}) -> list of dicts."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = read_text(path, "utf-8-sig")
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as whole_err:
        data = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError:
                    raise DataError(
                        f"{path}: not valid JSON ({whole_err}) nor JSON lines (line {lineno} does not parse)"
                    ) from None
                except RecursionError:
                    raise DataError(f"{path}:{lineno}: JSON nested too deeply to be a record") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be records") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(data) == 1 and lists:  # {"data": [{...}, ...]}
            data = lists[0]
        elif data and all(isinstance(v, (list, dict)) for v in data.values()):  # columns
            columns = {k: list(v.values()) if isinstance(v, dict) else v for k, v in data.items()}
            lengths = {len(v) for v in columns.values()}
            if len(lengths) != 1:
                raise DataError(f"{path}: columns have different lengths {sorted(lengths)}")
            data = [dict(zip(columns, values, strict=False)) for values in zip(*columns.values(), strict=False)]
        else:
            data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a list of objects (records), JSON lines, or an object of columns")
    if not data:
        raise DataError(f"{path}: no records")
    return data


def rows_from_records(
    records: list[dict[str, Any]], path: Path, text_fields: list[str], label_field: str, id_field: str, labelled: bool
) -> list[Row]:
    rows = []
    for i, record in enumerate(records):
        where = f"{path}: record {i + 1}"
        missing = [f for f in text_fields if f not in record]
        if missing:
            raise DataError(
                f"{where} has no text field '{missing[0]}' (fields present: {', '.join(map(str, record)) or 'none'});"
                " set news.data.text_fields"
            )
        parts = [record[f] for f in text_fields]
        if any(p is not None and not isinstance(p, str) for p in parts):
            raise DataError(f"{where}: text field must be a string, got {parts!r:.80}")
        text = " ".join(p.strip() for p in parts if p and p.strip())
        if not text:
            raise DataError(f"{where}: empty text")
        label = record.get(label_field)
        if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int, float))):
            raise DataError(f"{where}: label must be a string or a number, got {type(label).__name__} {label!r:.60}")
        if isinstance(label, float) and not math.isfinite(label):  # JSON's NaN / Infinity: no class
            raise DataError(f"{where}: label is {label}; a label must be a class name or a finite number")
        if labelled and label is None:
            present = ", ".join(map(str, record))
            raise DataError(
                f"{where} has no label field '{label_field}' (fields present: {present}); set news.data.label_field"
            )
        rid = record.get(id_field, i)
        rows.append(Row(str(rid), text, None if label is None else str(label)))
    check_unique_ids(rows, path)
    return rows


def check_unique_ids(rows: list[Row], path: Path) -> None:
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise DataError(f"{path}: duplicate id {row.id!r}")
        seen.add(row.id)


def read_submission_format(path: Path) -> tuple[list[str], list[str]]:
    """The sample submission's header and its id column."""
    table = list(csv.reader(io.StringIO(read_text(path, "utf-8-sig"), newline="")))
    if not table or len(table[0]) < 2:
        raise DataError(f"{path}: expected a header with an id column and a label column")
    return table[0], [r[0] for r in table[1:] if r]


def load_course(folder: Path, text_fields: list[str], label_field: str, id_field: str) -> Dataset:
    train_path, test_path = folder / COURSE_FILES[0], folder / COURSE_FILES[1]
    train = rows_from_records(read_records(train_path), train_path, text_fields, label_field, id_field, True)
    test_records = read_records(test_path)
    test = rows_from_records(test_records, test_path, text_fields, label_field, id_field, False)
    data = Dataset(train=train, test=test, format="course-json")
    sample = folder / "submission.csv"
    if sample.is_file():
        header, ids = read_submission_format(sample)
        data.id_column, data.label_column = header[0], header[1]
        if id_field not in test_records[0] and len(ids) == len(test):  # take the competition's ids, in order
            for row, rid in zip(test, ids, strict=False):
                row.id = rid
            check_unique_ids(test, sample)
    return data


# ---------------------------------------------------------------- AG News CSV


def read_ag_csv(path: Path) -> tuple[list[Row], str]:
    """Rows of an AG News CSV in either form; returns (rows, 'ag-original' | 'ag-hf')."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    table = [r for r in csv.reader(io.StringIO(read_text(path), newline="")) if r]
    if not table:
        raise DataError(f"{path}: file is empty")
    width = len(table[0])
    if width == 3:
        form = "ag-original"
    elif width == 2:
        form = "ag-hf"
    else:
        raise DataError(f"{path}: expected AG News rows of 3 fields (class, title, description) or 2 (text, label)")
    rows = []
    for i, fields in enumerate(table, start=1):
        if len(fields) != width:
            raise DataError(f"{path}:{i}: expected {width} fields, found {len(fields)}")
        if form == "ag-original":
            label, text = fields[0], f"{fields[1]} {fields[2]}".replace("\\n", " ")
        else:
            text, label = fields
        label = label.strip()
        if not label.lstrip("-").isdigit():
            raise DataError(f"{path}:{i}: label {label!r} is not a class number")
        if not text.strip():
            raise DataError(f"{path}:{i}: empty text")
        rows.append(Row(str(i - 1), text.strip(), label))
    return rows, form


def read_headed_csv(path: Path, text_fields: list[str], label_field: str, id_field: str) -> list[Row] | None:
    """Rows of a CSV whose first row is a header naming every text field (`id` and `label` columns optional:
    rows without an id are numbered, without a label unlabelled); None when the first row is no such header."""
    table = [r for r in csv.reader(io.StringIO(read_text(path, "utf-8-sig"), newline="")) if r]
    header = [h.strip() for h in table[0]] if table else []
    if not set(text_fields) <= set(header):
        return None
    if len(table) < 2:
        raise DataError(f"{path}: no rows below the header")
    records = []
    for i, fields in enumerate(table[1:], start=2):
        if len(fields) != len(header):
            raise DataError(f"{path}:{i}: expected {len(header)} fields ({', '.join(header)}), found {len(fields)}")
        record = dict(zip(header, fields, strict=True))
        if record.get(label_field) == "":  # an empty label cell: an unlabelled row
            del record[label_field]
        records.append(record)
    return rows_from_records(records, path, text_fields, label_field, id_field, labelled=False)


# The AG News release's class names, by class index (1..4 in the original form, 0..3 in the Hugging Face form).
AG_CLASS_NAMES = ("World", "Sports", "Business", "Sci/Tech")
AG_FIRST_LABEL = {"ag-original": 1, "ag-hf": 0}


def ag_class_names(folder: Path) -> list[str]:
    """The class names next to an AG News CSV (`classes.txt` or `class.txt`), else the release's own four."""
    names_file = next((folder / n for n in ("classes.txt", "class.txt") if (folder / n).is_file()), None)
    if names_file is None:
        return list(AG_CLASS_NAMES)
    names = [n.strip() for n in read_text(names_file).splitlines() if n.strip()]
    if not names:
        raise DataError(f"{names_file}: no class names")
    return names


def ag_label_names(path: Path, form: str) -> dict[str, str]:
    """{label as written in the AG CSV `path`: class name}, from the names file next to it and the file's form."""
    first = AG_FIRST_LABEL[form]
    return {str(first + i): name for i, name in enumerate(ag_class_names(path.parent))}


def name_key(name: str) -> str:
    return " ".join(str(name).lower().split())


def match_class_name(name: str, class_names: list[str]) -> int | None:
    """Index of `name` in `class_names`, compared case- and space-insensitively; failing that, the one class
    whose '/'-separated parts contain the other's (AG's `tech` is the release's `Sci/Tech`). None if no unique match."""
    key = name_key(name)
    keys = [name_key(c) for c in class_names]
    if key in keys:
        return keys.index(key)
    parts = set(key.split("/"))
    hits = [i for i, k in enumerate(keys) if key in k.split("/") or k in parts]
    return hits[0] if len(hits) == 1 else None


def map_labels_by_name(
    rows: list[Row], label_names: dict[str, str], classes: list[str], class_names: list[str], path: Path
) -> list[Row]:
    """Rows with each label rewritten to the value it has in `classes`, matched through the class NAMES.

    `label_names` maps the file's own label values to its class names. A label without a name, or a
    name that is not one of `class_names`, is a DataError naming the file: labels of two forms are never
    compared as raw values."""
    to_class: dict[str, str] = {}
    for label, name in label_names.items():
        k = match_class_name(name, class_names)
        if k is not None:
            to_class[label] = classes[k]
    out = []
    for i, row in enumerate(rows, start=1):
        if row.label is None:
            out.append(row)
            continue
        if row.label not in label_names:
            raise DataError(
                f"{path}:{i}: label {row.label!r} has no class name (names known for this file: "
                f"{', '.join(f'{k}={v}' for k, v in label_names.items())})"
            )
        if row.label not in to_class:
            raise DataError(
                f"{path}:{i}: class {label_names[row.label]!r} (label {row.label!r}) is not one of the model's "
                f"classes [{', '.join(class_names)}]; labels are matched by class name"
            )
        out.append(dataclasses.replace(row, label=to_class[row.label]))
    return out


def load_ag(folder: Path) -> Dataset:
    """train.csv plus dev.csv and/or test.csv; a dev/test file in the other AG form is mapped by class name."""
    train, form = read_ag_csv(folder / "train.csv")
    names = ag_class_names(folder)
    classes = [str(AG_FIRST_LABEL[form] + i) for i in range(len(names))]

    def held_out(name: str) -> list[Row] | None:
        path = folder / name
        if not path.is_file():
            return None
        rows, file_form = read_ag_csv(path)
        return map_labels_by_name(rows, ag_label_names(path, file_form), classes, names, path)

    dev = held_out("dev.csv")
    test = held_out("test.csv") or dev
    if test is None:
        raise DataError(f"{folder}: AG News needs test.csv or dev.csv next to train.csv")
    return Dataset(train=train, test=test, dev=dev, format=form, classes=classes, class_names=names)


def load_folder(folder: Path, text_fields: list[str], label_field: str, id_field: str) -> Dataset:
    if (folder / COURSE_FILES[0]).is_file() or (folder / COURSE_FILES[1]).is_file():
        return load_course(folder, text_fields, label_field, id_field)
    if (folder / "train.csv").is_file():
        return load_ag(folder)
    present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise DataError(
        f"{folder}: expected News_train.json + News_test.json (course) or train.csv (AG News); found {present}"
    )


# ---------------------------------------------------------------- labels


def settle_classes(data: Dataset, classes: list[str], where: str) -> Dataset:
    """Fix the class list (param, source, or the sorted train labels) and check every label is in it."""
    if classes:
        data.classes, data.class_names = list(classes), list(classes) if not data.class_names else data.class_names
    if not data.classes:
        seen = {r.label for r in data.train}
        numeric = all(s.lstrip("-").isdigit() for s in seen)
        data.classes = sorted(seen, key=lambda s: (int(s), s) if numeric else (0, s))
    if len(data.class_names) != len(data.classes):
        data.class_names = list(data.classes)
    allowed = set(data.classes)
    for split, rows in (("train", data.train), ("dev", data.dev or []), ("test", data.test)):
        for row in rows:
            if row.label is not None and row.label not in allowed:
                raise DataError(
                    f"{where}: {split} row id {row.id}: label {row.label!r} is not in the class list "
                    f"[{', '.join(data.classes)}]"
                )
    if len(data.classes) < 2:
        raise DataError(f"{where}: need at least 2 classes, found {data.classes}")
    return data


def drop_train_overlap(data: Dataset) -> int:
    """Remove train rows whose text is also in a labelled held-out split (dev, or a labelled test).

    The Hugging Face AG News sample's dev.csv is a subset of its train.csv: without
    this, validation would score memorised texts. Returns how many rows were dropped.
    """
    held = [r for r in (data.dev or []) + data.test if r.label is not None]
    if not held:
        return 0
    seen = {" ".join(r.text.lower().split()) for r in held}
    before = len(data.train)
    data.train = [r for r in data.train if " ".join(r.text.lower().split()) not in seen]
    if not data.train:
        raise DataError("every train text is also in the dev/test split; nothing left to train on")
    return before - len(data.train)


# ---------------------------------------------------------------- the raw folder


def write_raw(folder: Path, data: Dataset, source: str, dropped_overlap: int = 0) -> None:
    splits = {"train": data.train, "test": data.test, **({"dev": data.dev} if data.dev else {})}
    for name, rows in splits.items():
        with atomic_path(folder / f"{name}.jsonl") as tmp, tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(dataclasses.asdict(row), ensure_ascii=False) + "\n")
    write_json(folder / "meta.json", {
        "source": source, "format": data.format, "classes": data.classes, "class_names": data.class_names,
        "id_column": data.id_column, "label_column": data.label_column,
        "counts": {name: len(rows) for name, rows in splits.items()},
        "train_rows_dropped_as_in_dev_or_test": dropped_overlap,
    })  # fmt: skip


def read_jsonl(path: Path) -> list[Row]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            rows.append(Row(str(record["id"]), str(record["text"]), record["label"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path}:{lineno}: expected a JSON object with id, text and label") from None
    return rows


def read_raw(folder: Path) -> tuple[dict[str, list[Row]], dict[str, Any]]:
    meta = read_json(folder / "meta.json")
    splits = {name: read_jsonl(folder / f"{name}.jsonl") for name in ("train", "test", "dev") if name in meta["counts"]}
    return splits, meta


def load_prepared(folder: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """The prepared splits {name: {ids, lengths, labels}} and meta.json."""
    meta = read_json(folder / "meta.json")
    splits = {}
    for name in ("train", "val", "test"):
        path = folder / f"{name}.npz"
        if not path.is_file():
            raise DataError(f"{path}: file not found (run news-prepare)")
        with np.load(path) as npz:
            splits[name] = {k: npz[k] for k in ("ids", "lengths", "labels")}
    return splits, meta


def read_predictions(path: Path, columns: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (run news-predict)")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not set(columns) <= set(rows[0]):
        raise DataError(f"{path}: expected columns {', '.join(columns)}")
    return rows
