"""mygo-download: images into data/mygo/raw as train/<class>/*, valid/<class>/*, test/* plus classes.json, validated.

Sources: `sample` (generated, see sample_images.py), `dir:<folder>` (the course's
files), `url:<zip>` (+ `mygo.data.sha256`). A labelled split is either class
folders (`train_dir`) or a CSV list (`train_csv`: `file_column`, `label_column`;
paths relative to the CSV and inside its folder: common.io.resolve_inside). Every
image is decoded here: an unreadable image, a class with no images, an empty test
folder or a label outside the class list is one clear error, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from stages.common.cli import main
from stages.common.io import DataError, atomic_path, read_text, resolve_inside
from stages.common.sources import fetch_url, parse_source, require_dir
from stages.mygo import config, sample_images
from stages.mygo.data import check_image, list_images, natural_key


def run(p: config.MygoParams, common: config.CommonParams, paths: config.Paths) -> Path:
    source = parse_source(p.data.source, ("sample", "dir", "url"), key="mygo.data.source")
    with atomic_path(paths.raw) as out:
        out.mkdir()
        if source.kind == "sample":
            d = p.data
            sample_images.write_dataset(
                out, d.sample_seed, d.sample_train_per_class, d.sample_valid_per_class, d.sample_test
            )
            folder = out
            data = config.DataParams()  # the generated layout: train/<i>_<name>/, valid/…, test/
        else:
            folder = (
                require_dir(source.value)
                if source.kind == "dir"
                else fetch_url(source.value, p.data.sha256, paths.downloads)
            )
            data = p.data
        counts = import_folder(folder, data, out, copy=source.kind != "sample")
    print(f"mygo-download: {source.kind} -> {paths.raw} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return paths.raw


def import_folder(folder: Path, d: config.DataParams, out: Path, copy: bool = True) -> dict[str, int]:
    """Validate the splits under `folder` and (with `copy`) write them to `out` in the normalised layout."""
    train = labelled_split(folder, d.train_dir, d.train_csv, d, "train")
    classes = list(d.classes) or sorted({label for _, label, _ in train}, key=natural_key)
    valid = labelled_split(folder, d.valid_dir, d.valid_csv, d, "valid")
    train, valid = name_labels(train, classes, "train"), name_labels(valid, classes, "valid")
    check_labels(train, classes, "train", folder)
    test = test_images(folder, d.test_dir)
    for file, _ in train + valid:
        check_image(file)
    for file in test:
        check_image(file)
    if copy:
        for split, items in (("train", train), ("valid", valid)):
            for file, label in items:
                dest = out / split / label / file.name
                if dest.exists():
                    raise DataError(
                        f"{file}: a second '{file.name}' in class '{label}' of {split}; file names must be unique"
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, dest)
        (out / "test").mkdir()
        for file in test:
            shutil.copyfile(file, out / "test" / file.name)
    (out / "classes.json").write_text(json.dumps(classes, indent=1) + "\n", encoding="utf-8")
    return {"classes": len(classes), "train": len(train), "valid": len(valid), "test": len(test)}


def labelled_split(
    folder: Path, sub: str, csv_name: str, d: config.DataParams, split: str
) -> list[tuple[Path, str, str]]:
    """(image, label, where the label was read) from a CSV list or from <sub>/<class>/ folders, in a fixed order."""
    if csv_name:
        return read_csv_list(_resolve(folder, csv_name), d.file_column, d.label_column)
    root = _resolve(folder, sub)
    if not root.is_dir():
        raise DataError(f"{root}: {split} folder not found (expected {sub}/<class>/<image>; see mygo.data.{split}_dir)")
    items = []
    class_dirs = sorted(
        (c for c in root.iterdir() if c.is_dir() and not c.name.startswith(".")), key=lambda c: natural_key(c.name)
    )
    if not class_dirs:
        raise DataError(f"{root}: no class folders (expected {sub}/<class>/<image>)")
    for class_dir in class_dirs:
        images = list_images(class_dir, root)
        if not images:
            raise DataError(f"{class_dir}: class folder '{class_dir.name}' has no images")
        items += [(image, class_dir.name, str(class_dir)) for image in images]
    return items


def read_csv_list(path: Path, file_column: str, label_column: str) -> list[tuple[Path, str, str]]:
    if not path.is_file():
        raise DataError(f"{path}: CSV list not found")
    with io.StringIO(read_text(path, "utf-8-sig"), newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (file_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {missing}; has {reader.fieldnames} (see mygo.data.file_column/label_column)"
            )
        items = []
        for line, row in enumerate(reader, start=2):
            file = resolve_inside(path.parent, (row[file_column] or "").strip(), what=f"{path} line {line}")
            label = (row[label_column] or "").strip()
            if not file.is_file():
                raise DataError(f"{path} line {line}: image '{row[file_column]}' not found")
            if not label:
                raise DataError(f"{path} line {line}: empty label")
            items.append((file, label, f"{path} line {line}"))
    if not items:
        raise DataError(f"{path}: no rows")
    return items


def _key(name: str) -> str:
    return " ".join(name.lower().replace("-", " ").split())


def class_of(label: str, classes: list[str]) -> str | None:
    """The class a label names: the class itself; else the one class equal to it ignoring case, spaces and
    '-'; else, for class names of the form `<index>_<name>` (the sample's `0_tomori`), the one class whose
    index or name part the label is. None when no class, or more than one, matches."""
    if label in classes:
        return label
    key = _key(label)
    for match in (
        lambda c: _key(c) == key,
        lambda c: "_" in c and key in (_key(c.split("_", 1)[0]), _key(c.split("_", 1)[1])),
    ):
        hits = [c for c in classes if match(c)]
        if hits:
            return hits[0] if len(hits) == 1 else None
    return None


def name_labels(items: list[tuple[Path, str, str]], classes: list[str], split: str) -> list[tuple[Path, str]]:
    """(image, class) for each (image, label, where): labels from folder names and CSV lists meet through the
    class NAMES (class_of); a label that names no class, or several, is a DataError naming where it was read."""
    out = []
    for file, label, where in items:
        name = class_of(label, classes)
        if name is None:
            raise DataError(
                f"{where}: unknown label '{label}' in {split} (classes: {', '.join(classes)}); "
                "labels are matched by class name"
            )
        out.append((file, name))
    return out


def check_labels(items: list[tuple[Path, str]], classes: list[str], split: str, folder: Path) -> None:
    present = {label for _, label in items}
    empty = [c for c in classes if c not in present]
    if empty and split == "train":
        raise DataError(f"{folder}: class(es) {empty} have no {split} images")


def test_images(folder: Path, sub: str) -> list[Path]:
    root = _resolve(folder, sub)
    if not root.is_dir():
        raise DataError(f"{root}: test folder not found (see mygo.data.test_dir)")
    images = list_images(root)
    if not images:
        raise DataError(f"{root}: test folder has no images")
    stems = [f.stem for f in images]
    if len(set(stems)) != len(stems):
        dup = min(s for s in stems if stems.count(s) > 1)
        raise DataError(f"{root}: two test images share the id '{dup}' (ids are file names without extension)")
    return images


def _resolve(folder: Path, sub: str) -> Path:
    path = Path(sub)
    return path if path.is_absolute() else folder / path


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
