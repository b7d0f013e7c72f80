"""Every news stage called as a plain function with tiny params on a temporary folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from news_helpers import tiny_params
from tiny import COMMON

from stages.common.io import DataError
from stages.news import download, evaluate, package, predict, prepare, train
from stages.news.data import load_prepared
from stages.news.model import load_model


def run_all(p, common, paths) -> dict:
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    summary = train.run(p, common, paths)
    predict.run(p, common, paths)
    metrics = evaluate.run(p, common, paths)
    package.run(p, COMMON, paths)
    return {"train": summary, **metrics}


def test_sample_pipeline_end_to_end(common, paths) -> None:
    p = tiny_params()
    result = run_all(p, common, paths)

    with paths.submission.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "label"]  # the header of the (sample) course submission.csv
    assert len(rows) == 1 + p.data.sample_test
    assert {r[1] for r in rows[1:]} <= {"business", "sports", "tech", "world"}
    metrics = json.loads((paths.metrics / "news.json").read_text())
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and 0.0 <= metrics["val_macro_f1"] <= 1.0
    assert result["train"]["epochs_run"] == 2
    for name in ("loss.png", "accuracy.png", "confusion_matrix.png", "train_history.csv", "per_class.csv"):
        assert (paths.plots / name).is_file()
    report = paths.report.read_text()
    assert "validation accuracy" in report and f"{metrics['val_accuracy']:.4f}" in report
    model = load_model(paths.model)
    assert model.head.out_features == 4
    assert not list(paths.root.rglob("*.tmp"))  # no temporary leftovers


def test_training_is_deterministic_and_sdpa_matches(common, paths, tmp_path) -> None:
    p = tiny_params()
    p.train.epochs = 1
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    first = train.run(p, common, paths)
    second = train.run(p, common, paths)
    assert first["best_val_loss"] == second["best_val_loss"]
    p.model.attention = "sdpa"
    fast = train.run(p, common, paths)
    assert fast["best_val_loss"] == pytest.approx(first["best_val_loss"], abs=1e-4)


@pytest.mark.parametrize("tokenizer", ["treebank", "bpe"])
def test_other_tokenizers_and_word2vec_init(common, paths, tokenizer) -> None:
    p = tiny_params()
    p.train.epochs = 1
    p.prepare.tokenizer, p.prepare.bpe_merges = tokenizer, 200
    p.model.embedding_init = "word2vec" if tokenizer == "bpe" else "random"
    p.model.pooling = "cls" if tokenizer == "bpe" else "max"
    p.model.pos_encoding, p.model.norm_first = "learned", tokenizer == "bpe"
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths)
    predict.run(p, common, paths)
    meta = json.loads((paths.prepared / "meta.json").read_text())
    assert meta["vocab_size"] > 10
    with np.load(paths.prepared / "train.npz") as npz:
        assert (npz["ids"][:, 0] == 2).all()  # every sequence starts with [CLS]


def test_sample_corpus_is_hard_for_bag_of_words(paths) -> None:
    """Chance is 25%; counting words must do clearly better, but far from 100%."""
    p = tiny_params()
    p.data.sample_train = 1200
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    splits, meta = load_prepared(paths.prepared)
    bow = evaluate.bag_of_words_accuracy(splits, meta["vocab_size"], 0)
    assert 0.45 < bow < 0.85


def test_predict_file_scores_a_labelled_csv(common, paths, tmp_path) -> None:
    p = tiny_params()
    p.train.epochs = 1
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths)
    src = tmp_path / "more.json"  # course-style JSON with labels (AG News CSV works the same way)
    src.write_text(
        json.dumps(
            [
                {"id": "a", "text": "The striker won the final.", "label": "sports"},
                {"id": "b", "text": "The central bank cut interest rates.", "label": "business"},
            ]
        )
    )
    result = predict.predict_file(src, tmp_path / "out.csv", p, common, paths)
    assert result["rows"] == 2 and 0.0 <= result["accuracy"] <= 1.0
    assert (tmp_path / "out.csv").read_text().startswith("id,label,class_name")

    # a plain `id,text` CSV (the usual file to label): predicted, no accuracy; with a label column: scored
    texts = tmp_path / "texts.csv"
    texts.write_text('id,text\nx1,The striker won the final.\nx2,"Rates, again, were cut."\n')
    result = predict.predict_file(texts, tmp_path / "texts_out.csv", p, common, paths)
    assert result == {"rows": 2}
    with (tmp_path / "texts_out.csv").open(newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == ["x1", "x2"]
    texts.write_text("text,label\nThe striker won the final.,sports\nBanks cut rates.,business\n")
    assert 0.0 <= predict.predict_file(texts, tmp_path / "texts_out.csv", p, common, paths)["accuracy"] <= 1.0
    texts.write_text("id,content\nx1,The striker won the final.\n")
    with pytest.raises(DataError, match="give a header row naming the columns text"):
        predict.predict_file(texts, tmp_path / "texts_out.csv", p, common, paths)

    # --output an existing folder, or the input itself: one error, nothing deleted or overwritten
    folder = tmp_path / "keep"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "mine.txt").write_text("mine")
    with pytest.raises(DataError, match=f"^{folder}: is a folder; --output must name a file"):
        predict.predict_file(src, folder, p, common, paths)
    assert (folder / "inner" / "mine.txt").read_text() == "mine"
    before = src.read_bytes()
    with pytest.raises(DataError, match="is also an input; choose another --output"):
        predict.predict_file(src, tmp_path / "." / src.name, p, common, paths)
    assert src.read_bytes() == before


def test_interrupted_training_resumes_from_its_checkpoint(common, paths, monkeypatch, capsys) -> None:
    p = tiny_params()
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    reference = train.run(p, common, paths)
    real_evaluate, calls = train.evaluate, []

    def crash_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train.run(p, common, paths)
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    resumed = train.run(p, common, paths)
    assert "resuming from" in capsys.readouterr().out
    assert resumed["best_val_loss"] == reference["best_val_loss"]
    assert not list(paths.checkpoints.rglob("*.pt"))  # cleared after success
