"""news-download: the labelled train texts and the test texts into data/news/raw, validated.

Sources: `sample` (a corpus generated here in the course's JSON format, see corpus.py),
`dir:<folder>` (the course's News_train.json/News_test.json/submission.csv, or AG News
CSV in its original or Hugging Face form), `url:<archive>` (+ `news.data.sha256`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from stages.common.cli import main
from stages.common.io import atomic_path
from stages.common.sources import fetch_url, parse_source, require_dir
from stages.news import config, corpus
from stages.news.data import Dataset, drop_train_overlap, load_folder, settle_classes, write_raw


def run(p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> Path:
    source = parse_source(p.data.source, ("sample", "dir", "url"), key="news.data.source")
    d = p.data
    if source.kind == "sample":
        with tempfile.TemporaryDirectory() as tmp:
            corpus.write_course_files(Path(tmp), d.sample_train, d.sample_test, d.sample_seed, d.sample_label_noise)
            data = load_folder(Path(tmp), ["text"], "label", "id")
        where = "sample"
    else:
        folder = (
            require_dir(source.value) if source.kind == "dir" else fetch_url(source.value, d.sha256, paths.downloads)
        )
        data = load_folder(find_data_folder(folder), d.text_fields, d.label_field, d.id_field)
        where = str(folder)
    data = settle_classes(data, d.classes, where)
    dropped = drop_train_overlap(data) if d.drop_train_overlap else 0
    with atomic_path(paths.raw) as out:
        out.mkdir()
        write_raw(out, data, p.data.source, dropped)
    note = f"; dropped {dropped} train rows that are also in dev/test" if dropped else ""
    print(f"news-download: {describe(data)} ({data.format}){note} -> {paths.raw}")
    return paths.raw


def find_data_folder(folder: Path) -> Path:
    """`folder`, or its only sub-folder holding the files (archives often add a top folder)."""
    names = ("News_train.json", "News_test.json", "train.csv")
    if any((folder / n).is_file() for n in names):
        return folder
    found = sorted({f.parent for n in names for f in folder.rglob(n)})
    return found[0] if len(found) == 1 else folder


def describe(data: Dataset) -> str:
    dev = f", dev {len(data.dev)}" if data.dev else ""
    return f"train {len(data.train)}{dev}, test {len(data.test)}, {len(data.classes)} classes"


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
