"""news-evaluate: validation accuracy, macro-F1, per-class table, confusion matrix; test accuracy when the source labels its test rows.

Two baselines on the same train rows and the same validation split: a bag of words
(logistic regression on counts of our tokens: how much word order and context add) and the
strong cheap one, TF-IDF of word unigrams + bigrams with an L2 logistic regression
(scikit-learn's tokenisation of the raw texts, `news.evaluate.baseline_*`); the Transformer's
margin over the latter is `margin_over_tfidf`.
"""

from __future__ import annotations

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, read_json, write_csv, write_json
from stages.common.plots import confusion_matrix_plot
from stages.common.runtime import set_kernels, set_threads, thread_count
from stages.common.tracking import tracked_run
from stages.news import config
from stages.news.data import load_prepared, read_predictions


def scores(true: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[dict, np.ndarray, list[dict]]:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    rows = []
    for k in range(n_classes):
        tp, predicted, actual = matrix[k, k], matrix[:, k].sum(), matrix[k].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual)})
    summary = {
        "accuracy": float(np.trace(matrix) / max(1, matrix.sum())),
        "macro_f1": float(np.mean([r["f1"] for r in rows])),
    }
    return summary, matrix, rows


def bag_of_words_accuracy(splits: dict, vocab_size: int, seed: int) -> float:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    def counts(split: dict):
        ids, lengths = split["ids"], split["lengths"]
        rows = np.repeat(np.arange(len(ids)), lengths - 1)
        cols = (
            np.concatenate([seq[1:n] for seq, n in zip(ids, lengths, strict=False)]) if len(ids) else np.zeros(0, int)
        )
        return csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(ids), vocab_size))

    clf = LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    clf.fit(counts(splits["train"]), splits["train"]["labels"])
    return float((clf.predict(counts(splits["val"])) == splits["val"]["labels"]).mean())


def tfidf_baseline(texts: dict, splits: dict, ngrams: int, c: float, seed: int) -> dict:
    """Accuracy of TF-IDF (word 1..ngrams) + logistic regression trained on texts["train"], on val (and labelled test)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, ngrams))
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(vectorizer.fit_transform(texts["train"]), splits["train"]["labels"])
    out = {}
    for name in ("val", "test"):
        labels = splits[name]["labels"]
        keep = labels >= 0
        if keep.any():
            pred = clf.predict(vectorizer.transform([t for t, k in zip(texts[name], keep, strict=True) if k]))
            out[name] = float((pred == labels[keep]).mean())
    return out


def run(p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> dict:
    set_kernels(common.kernels)
    set_threads(thread_count(p.threads, common.threads))
    splits, meta = load_prepared(paths.prepared)
    names, n = meta["class_names"], len(meta["classes"])
    val = read_predictions(paths.predictions / "val.csv", ("true", "pred"))
    if len(val) != len(splits["val"]["labels"]):
        raise DataError(
            f"{paths.predictions / 'val.csv'}: {len(val)} rows, but the validation split has {len(splits['val']['labels'])}"
        )
    true = np.array([int(r["true"]) for r in val], dtype=np.int64)
    pred = np.array([int(r["pred"]) for r in val], dtype=np.int64)
    summary, matrix, per_class = scores(true, pred, n)
    metrics = {
        "val_accuracy": summary["accuracy"],
        "val_macro_f1": summary["macro_f1"],
        "val_rows": len(true),
        "majority_class_accuracy": float(np.bincount(true, minlength=n).max() / max(1, len(true))),
        "bag_of_words_val_accuracy": bag_of_words_accuracy(splits, meta["vocab_size"], p.seed),
    }
    texts = read_json(paths.prepared / "texts.json")
    for name, split in splits.items():
        if len(texts.get(name, [])) != len(split["labels"]):
            raise DataError(f"{paths.prepared / 'texts.json'}: does not match {name}.npz; re-run news-prepare")
    e = p.evaluate
    tfidf = tfidf_baseline(texts, splits, e.baseline_ngrams, e.baseline_c, p.seed)
    metrics["tfidf_val_accuracy"] = tfidf["val"]
    metrics["margin_over_tfidf"] = metrics["val_accuracy"] - tfidf["val"]
    test = read_predictions(paths.predictions / "test.csv", ("id", "label", "true_label"))
    labelled = [r for r in test if r["true_label"] != ""]
    if labelled:
        metrics["test_accuracy"] = float(np.mean([r["label"] == r["true_label"] for r in labelled]))
        metrics["test_rows_labelled"] = len(labelled)
        if "test" in tfidf:
            metrics["tfidf_test_accuracy"] = tfidf["test"]
    table = [{"class": names[k], **row} for k, row in enumerate(per_class)]
    write_csv(paths.plots / "per_class.csv", table)
    confusion_matrix_plot(paths.plots / "confusion_matrix.png", matrix, names, "news: validation confusion matrix")
    write_json(paths.metrics / "news.json", {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()})
    with tracked_run(config.TASK, "news-evaluate", {"classes": names}, common.mlflow, background=True) as tracker:
        tracker.log_metrics(metrics)
        tracker.log_artifact(paths.plots / "confusion_matrix.png")
    print(
        "news-evaluate: "
        + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    )
    return metrics


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
