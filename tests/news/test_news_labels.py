"""Class identity by name: AG News in one form, scored in the other, gives the true accuracy."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from news_helpers import AG_HF, AG_ORIGINAL, tiny_params
from tiny import COMMON

from stages.common.io import DataError
from stages.news import download, predict, prepare, train
from stages.news.data import Row, map_labels_by_name, match_class_name

ROOT = Path(__file__).resolve().parents[2]
needs_ag = pytest.mark.skipif(
    not (AG_HF / "train.csv").is_file() or not (AG_ORIGINAL / "classes.txt").is_file(),
    reason="AG News sample not found under ../shared/data/ag_news",
)


def to_original_form(src: Path, dest: Path) -> None:
    """The HF-form CSV `src` ("text",0..3) rewritten in AG's original form ("1".."4","title","description")."""
    with src.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    with dest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        for text, label in rows:
            title, _, description = text.partition(" ")
            writer.writerow([str(int(label) + 1), title, description])
    shutil.copy(AG_ORIGINAL / "classes.txt", dest.parent / "classes.txt")


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stages.news.predict", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_names_match_across_forms() -> None:
    names = ["world", "sports", "business", "tech"]
    assert [match_class_name(n, names) for n in ("World", "Sports", "BUSINESS", "Sci/Tech")] == [0, 1, 2, 3]
    assert match_class_name("Science", names) is None
    rows = [Row("0", "a", "4"), Row("1", "b", "1"), Row("2", "c", None)]
    mapped = map_labels_by_name(rows, {"1": "World", "4": "Sci/Tech"}, ["0", "1", "2", "3"], names, Path("t.csv"))
    assert [r.label for r in mapped] == ["3", "0", None]
    with pytest.raises(DataError, match=r"t.csv:1: class 'Cats' \(label '1'\) is not one of the model's classes"):
        map_labels_by_name(rows[1:], {"1": "Cats"}, ["0", "1", "2", "3"], names, Path("t.csv"))
    with pytest.raises(DataError, match=r"t.csv:1: label '4' has no class name"):
        map_labels_by_name(rows, {"1": "World"}, ["0", "1", "2", "3"], names, Path("t.csv"))


@needs_ag
def test_train_on_hf_form_score_original_form_true_accuracy(tmp_path, common) -> None:
    from stages.news import config

    paths = config.Paths(tmp_path / "repo")
    p = tiny_params(f"dir:{AG_HF}")
    p.train.epochs = 1
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths)
    hf = predict.predict_file(AG_HF / "dev.csv", tmp_path / "hf.csv", p, common, paths)
    original_dir = tmp_path / "original"
    original_dir.mkdir()
    to_original_form(AG_HF / "dev.csv", original_dir / "test.csv")
    original = predict.predict_file(original_dir / "test.csv", tmp_path / "original.csv", p, common, paths)
    # the same texts, the same predictions: the same accuracy whichever form the labels are written in
    assert hf["rows"] == original["rows"] == 1000
    assert original["accuracy"] == hf["accuracy"] > 0.4  # well above chance (0.25) after one tiny epoch

    # through the command line, as a user runs it: the accuracy printed, and exit 0
    shutil.copy(ROOT / "params.yaml", paths.root / "params.yaml")
    done = run_cli(paths.root, "--input", str(original_dir / "test.csv"), "--output", str(tmp_path / "cli.csv"))
    assert done.returncode == 0, done.stderr
    assert f"'accuracy': {original['accuracy']}" in done.stdout

    # a file whose class names are not the model's: one error line naming it, exit 1, nothing written
    (original_dir / "classes.txt").write_text("Cats\nDogs\nBirds\nFish\n")
    failed = run_cli(paths.root, "--input", str(original_dir / "test.csv"), "--output", str(tmp_path / "bad.csv"))
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(r"test.csv:\d+: class '(Cats|Dogs|Birds|Fish)' \(label '\d'\) is not one of", lines[0])
    assert not (tmp_path / "bad.csv").exists()


@needs_ag
def test_training_folder_with_a_test_file_in_the_other_form(tmp_path, paths) -> None:
    """train.csv in HF form and test.csv in the original form in one folder: test labels mapped by name."""
    from stages.news.data import read_raw

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(AG_HF / "class.txt", folder)
    (folder / "train.csv").write_text("".join((AG_HF / "train.csv").read_text().splitlines(keepends=True)[-200:]))
    to_original_form(AG_HF / "dev.csv", folder / "test.csv")
    (folder / "classes.txt").unlink()  # one names file for the folder: class.txt (HF order, 0-based)
    download.run(tiny_params(f"dir:{folder}"), COMMON, paths)
    splits, meta = read_raw(paths.raw)
    with (AG_HF / "dev.csv").open(newline="", encoding="utf-8") as f:
        truth = [label for _, label in csv.reader(f)]
    assert meta["classes"] == ["0", "1", "2", "3"]
    assert [r.label for r in splits["test"]] == truth
