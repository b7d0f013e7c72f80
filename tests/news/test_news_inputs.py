"""Real-format loaders (course JSON in its possible shapes, AG News CSV) and bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from news_helpers import AG_HF, AG_ORIGINAL, tiny_params
from tiny import COMMON

from stages.common.io import DataError
from stages.news import download, prepare
from stages.news.data import load_folder, read_raw

REPO = Path(__file__).resolve().parents[2]


def write_course(folder: Path, train, test, submission: str | None = "id,category\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "News_train.json").write_text(train if isinstance(train, str) else json.dumps(train))
    (folder / "News_test.json").write_text(test if isinstance(test, str) else json.dumps(test))
    if submission is not None:
        (folder / "submission.csv").write_text(submission)
    return folder


TRAIN = [
    {"id": i, "text": f"story number {i} about {'rates' if i % 2 else 'goals'}", "label": i % 2} for i in range(20)
]
TEST = [{"id": 100 + i, "text": f"another story {i}"} for i in range(5)]


def test_course_list_of_objects_keeps_submission_columns(tmp_path, paths) -> None:
    folder = write_course(tmp_path / "src", TRAIN, TEST)
    download.run(tiny_params(f"dir:{folder}"), COMMON, paths)
    splits, meta = read_raw(paths.raw)
    assert meta["classes"] == ["0", "1"] and (meta["id_column"], meta["label_column"]) == ("id", "category")
    assert [r.id for r in splits["test"]] == [str(100 + i) for i in range(5)]


def test_course_json_lines_columns_and_custom_fields(tmp_path) -> None:
    rows = [{"headline": f"h{i}", "short_description": f"d {i}", "category": "A" if i % 2 else "B"} for i in range(6)]
    jsonl = "\n".join(json.dumps(r) for r in rows)
    columns = json.dumps({k: {str(i): r[k] for i, r in enumerate(rows)} for k in ("headline", "short_description")})
    sub = "Id,Category\n" + "".join(f"{i + 7},A\n" for i in range(6))
    folder = write_course(tmp_path / "src", jsonl, columns, sub)
    data = load_folder(folder, ["headline", "short_description"], "category", "id")
    assert data.train[1].text == "h1 d 1" and data.train[1].label == "A"
    assert [r.id for r in data.test] == [str(i + 7) for i in range(6)]  # ids taken from submission.csv
    assert (data.id_column, data.label_column) == ("Id", "Category")


@pytest.mark.skipif(not AG_HF.is_dir(), reason=f"AG News sample not found at {AG_HF}")
def test_ag_news_hugging_face_form(paths) -> None:
    download.run(tiny_params(f"dir:{AG_HF}"), COMMON, paths)
    splits, meta = read_raw(paths.raw)
    # dev.csv is a subset of train.csv in this sample: those 1,000 rows leave train
    assert (len(splits["train"]), len(splits["dev"]), len(splits["test"])) == (4000, 1000, 1000)
    assert meta["train_rows_dropped_as_in_dev_or_test"] == 1000
    assert meta["classes"] == ["0", "1", "2", "3"] and meta["class_names"] == ["world", "sports", "business", "tech"]
    prepare.run(tiny_params(), COMMON, paths)
    assert json.loads((paths.prepared / "meta.json").read_text())["validation"] == "dev split of the source"


@pytest.mark.skipif(
    not (AG_ORIGINAL / "classes.txt").is_file(), reason=f"AG News classes.txt not found at {AG_ORIGINAL}"
)
def test_ag_news_original_form(tmp_path, paths) -> None:
    folder = tmp_path / "ag"
    folder.mkdir()
    shutil.copy(AG_ORIGINAL / "classes.txt", folder)
    lines = [f'"{1 + i % 4}","Title {i} says ""hi""","Line one\\nline two of story {i} #39;s"' for i in range(48)]
    (folder / "train.csv").write_text("\n".join(lines[:40]) + "\n")
    (folder / "test.csv").write_text("\n".join(lines[40:]) + "\n")
    download.run(tiny_params(f"dir:{folder}"), COMMON, paths)
    splits, meta = read_raw(paths.raw)
    assert meta["format"] == "ag-original" and meta["class_names"] == ["World", "Sports", "Business", "Sci/Tech"]
    assert splits["train"][0].text == 'Title 0 says "hi" Line one line two of story 0 #39;s'
    assert splits["test"][0].label == "1" and len(splits["train"]) == 40


BAD = {
    "not JSON": ("{this is not json", json.dumps(TEST), "not valid JSON"),
    "missing text field": (json.dumps([{"body": "x", "label": 0}]), json.dumps(TEST), "no text field 'text' (fields present: body, label)"),
    "missing label": (json.dumps([{"text": "x"}]), json.dumps(TEST), "no label field 'label'"),
    "empty text": (json.dumps([{"text": "  ", "label": 0}]), json.dumps(TEST), "empty text"),
    "duplicate ids": (json.dumps([{"id": 1, "text": "a", "label": 0}, {"id": 1, "text": "b", "label": 1}]), json.dumps(TEST), "duplicate id '1'"),
    "empty test file": (json.dumps(TRAIN), "", "News_test.json: file is empty"),
    "empty test list": (json.dumps(TRAIN), "[]", "News_test.json: no records"),
    "deep nesting": ("[" * 100_000, json.dumps(TEST), "News_train.json: JSON nested too deeply"),
    "deep nesting, JSON lines": ('{"text": "a", "label": 0}\n' + "[" * 100_000, json.dumps(TEST), "News_train.json:2: JSON nested too deeply"),
    "NaN label": ('[{"text": "a", "label": 0}, {"text": "b", "label": NaN}]', json.dumps(TEST), "News_train.json: record 2: label is nan; a label must be"),
    "Infinity label": ('[{"text": "a", "label": Infinity}]', json.dumps(TEST), "News_train.json: record 1: label is inf"),
    "huge number label": ('[{"text": "a", "label": 1e400}]', json.dumps(TEST), "News_train.json: record 1: label is inf"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_course_files_raise_one_clear_error_and_write_nothing(tmp_path, paths, case) -> None:
    train, test, message = BAD[case]
    folder = write_course(tmp_path / "src", train, test)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        download.run(tiny_params(f"dir:{folder}"), COMMON, paths)
    assert not paths.raw.exists() and not list(paths.root.joinpath("data").rglob("*"))


def test_label_not_in_class_list(tmp_path, paths) -> None:
    folder = write_course(tmp_path / "src", TRAIN, TEST)
    p = tiny_params(f"dir:{folder}")
    p.data.classes = ["0", "2"]
    with pytest.raises(DataError, match=r"label '1' is not in the class list \[0, 2\]"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()


def test_cli_prints_one_line_and_exits_1(tmp_path) -> None:
    folder = write_course(tmp_path / "src", "{oops", json.dumps(TEST))
    (tmp_path / "params.yaml").write_text(
        f"common: {{device: cpu, threads: 1, mlflow: false}}\nnews: {{data: {{source: 'dir:{folder}'}}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "stages.news.download"]
    out = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and "not valid JSON" in out.stderr
    assert not (tmp_path / "data" / "news" / "raw").exists()


def test_deeply_nested_json_cli_prints_one_line(tmp_path) -> None:
    folder = write_course(tmp_path / "src", "[" * 100_000, json.dumps(TEST))
    (tmp_path / "params.yaml").write_text(
        f"common: {{device: cpu, threads: 1, mlflow: false}}\nnews: {{data: {{source: 'dir:{folder}'}}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "stages.news.download"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr == f"error: {folder / 'News_train.json'}: JSON nested too deeply to be records\n"


@pytest.mark.parametrize("output", ["folder", "input"])
def test_predict_cli_refuses_an_output_that_would_destroy_something(tmp_path, output) -> None:
    """`--output` an existing folder or the input file itself: one error line, exit 1, both left as they were."""
    src = tmp_path / "texts.csv"
    src.write_text("id,text\n1,a story\n")
    folder = tmp_path / "results"
    (folder / "old.csv").parent.mkdir()
    (folder / "old.csv").write_text("kept\n")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    target = folder if output == "folder" else src
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "stages.news.predict", "--input", str(src), "--output", str(target)],
                         cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {target}: is ")
    assert src.read_text() == "id,text\n1,a story\n" and (folder / "old.csv").read_text() == "kept\n"
