"""mini-imagenet-download: the course's layout in data/mini-imagenet/raw, every list line validated.

Sources (`mini-imagenet.data.source`): `sample` (generated here, see sample.py), `dir:<folder>`
(e.g. ../shared/data/mini_imagenet), `<path>.zip` (the course's images.zip, extracted safely) and
`url:<url>` + `mini-imagenet.data.sha256` (the course's own URL). raw/ then holds `images/<wnid>/<file>`,
`train.txt`, `val.txt` (the course's `validation.txt` is accepted and stored as val.txt), `test.txt`
and, when the source has one, `classes.txt`. Only listed images are kept.

Validation: every listed path exists inside the dataset folder (common.io.resolve_inside: no `..`, absolute
path or symlink leaves it) and decodes, labels are ints in [0, n_classes), an image listed twice has one
label and is in one split only; otherwise one error naming the user's list file and line.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from stages.common.cli import main
from stages.common.io import DataError, atomic_path
from stages.common.sources import Source, fetch_url, parse_source, require_dir, safe_extract
from stages.mini_imagenet import config, data, sample

STAGE = "mini-imagenet-download"


def parse(spec: str) -> Source:
    if spec.lower().endswith(".zip") and not spec.startswith(("url:", "dir:")):
        return Source("zip", spec)
    return parse_source(spec, ("sample", "dir", "url"), key="mini-imagenet.data.source")


def run(p: config.MiniImagenetParams, common: config.CommonParams, paths: config.Paths) -> dict:
    p.check_data()
    source = parse(p.data.source)
    d = p.data
    with atomic_path(paths.raw) as out:
        out.mkdir()
        if source.kind == "sample":
            sample.write(out, {"train": d.sample_train, "val": d.sample_val, "test": d.sample_test}, d.sample_size,
                         d.sample_seed)  # fmt: skip
            summary = validate(out, d.num_classes)
        elif source.kind == "zip":
            archive = Path(source.value)
            if not archive.is_file():
                raise DataError(f"{archive}: archive not found")
            if not zipfile.is_zipfile(archive):
                raise DataError(f"{archive}: not a zip archive (expected the course's images.zip)")
            extracted = safe_extract(archive, out.parent / "extracted")
            root = find_root(extracted, str(archive))
            shown = _member(str(archive), root, extracted)
            summary = import_layout(root, out, d.num_classes, shown, move=True)
        else:
            if source.kind == "dir":
                root = find_root(require_dir(source.value), source.value)
                shown = str(root)
            else:
                folder = fetch_url(source.value, d.sha256, paths.downloads)
                root = find_root(folder, source.value)
                shown = _member(source.value, root, folder)
            summary = import_layout(root, out, d.num_classes, shown, move=False)
        validate(out, summary["num_classes"])  # what we wrote must read back
    counts = ", ".join(f"{s} {summary[s]}" for s in config.SPLITS)
    print(f"{STAGE}: {source.kind}: {counts}, {summary['num_classes']} classes -> {paths.raw}")
    return summary


def find_root(folder: Path, shown: str) -> Path:
    """The folder holding train.txt: `folder` itself or exactly one folder below it (archives add a top folder)."""
    if (folder / "train.txt").is_file():
        return folder
    found = sorted(f.parent for f in folder.rglob("train.txt"))
    if len(found) != 1:
        where = "in several folders" if found else "not found"
        raise DataError(f"{shown}: train.txt {where}; expected images/<wnid>/<file> with train.txt, val.txt, test.txt")
    return found[0]


def _member(archive: str, root: Path, extracted: Path) -> str:
    """How errors name a folder inside an archive: `images.zip:` or `images.zip:top/`."""
    rel = root.relative_to(extracted).as_posix()
    return f"{archive}:" if rel == "." else f"{archive}:{rel}/"


def _shown(shown_root: str, list_file: Path) -> str:
    if not shown_root:
        return str(list_file)
    return f"{shown_root}{list_file.name}" if shown_root.endswith((":", "/")) else f"{shown_root}/{list_file.name}"


def validate(root: Path, num_classes: int = 0, shown_root: str = "") -> dict:
    """Check the three list files of a dataset folder; {split: [(line, path, label)]}, counts and the class count."""
    root = root.resolve()
    n_classes = data.count_classes(root, num_classes, _shown(shown_root, root / config.CLASSES_FILE))
    seen: dict[Path, str] = {}
    result: dict = {"num_classes": n_classes, "lines": {}, "lists": {}}
    for split in config.SPLITS:
        list_file = data.find_list(root, split)
        if list_file is None:
            names = " or ".join(config.LIST_NAMES[split])
            raise DataError(f"{shown_root or root}: {names} not found")
        shown = _shown(shown_root, list_file)
        lines = data.read_list_lines(list_file, n_classes, shown=shown)
        for lineno, path, _ in lines:
            if path in seen and not seen[path].startswith(f"{shown}:"):
                raise DataError(f"{shown}:{lineno}: {path.relative_to(root)} is also listed in {seen[path]}")
            seen.setdefault(path, f"{shown}:{lineno}")
        data.check_decodes(shown, lines)
        result["lines"][split], result["lists"][split] = lines, list_file
        result[split] = len(lines)
    return result


def import_layout(root: Path, out: Path, num_classes: int, shown_root: str, move: bool) -> dict:
    """Validate the dataset at `root`, then copy (or move) its listed images and lists into `out`."""
    summary = validate(root, num_classes, shown_root)
    root = root.resolve()
    for split in config.SPLITS:
        text = []
        for _, path, label in summary["lines"][split]:
            rel = path.relative_to(root)
            dest = out / rel
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                (shutil.move if move else shutil.copyfile)(path, dest)
            text.append(f"{rel.as_posix()} {label}\n")
        (out / f"{split}.txt").write_text("".join(text), encoding="utf-8")
    if (root / config.CLASSES_FILE).is_file():
        shutil.copyfile(root / config.CLASSES_FILE, out / config.CLASSES_FILE)
    return summary


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
