"""news-predict: labels for the test texts (encoded here from the raw text with the saved tokenizer) and the validation split.

Writes data/news/predictions/test.csv (id, label, class name, confidence) and val.csv
(true and predicted class index, for news-evaluate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, atomic_path, check_output, write_csv
from stages.common.runtime import resolve_device, seed_everything, set_kernels, set_threads, thread_count
from stages.news import config
from stages.news.data import load_prepared, read_jsonl
from stages.news.model import load_model, predict_logits
from stages.news.text import Tokenizer


def run(p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> Path:
    seed_everything(p.seed)
    set_kernels(common.kernels)
    set_threads(thread_count(p.threads, common.threads))
    device = resolve_device(common.device)
    splits, meta = load_prepared(paths.prepared)
    tokenizer = Tokenizer.load(paths.prepared / "tokenizer.json")
    test_rows = read_jsonl(paths.raw / "test.jsonl")
    if not test_rows:
        raise DataError(f"{paths.raw / 'test.jsonl'}: no test rows")
    model = load_model(paths.model, device)
    if model.head.out_features != len(meta["classes"]) or model.embed.num_embeddings != len(tokenizer.vocab):
        raise DataError(f"{paths.model}: made for another vocabulary or class list; re-run news-train")

    ids, lengths = tokenizer.encode_batch([r.text for r in test_rows])
    probs = softmax(predict_logits(model, ids, lengths, device, p.predict.batch_size))
    pred = probs.argmax(1)
    classes, names = meta["classes"], meta["class_names"]
    test = [{"id": r.id, "label": classes[k], "class_name": names[k], "confidence": round(float(probs[i, k]), 5),
             "true_label": "" if r.label is None else r.label}
            for i, (r, k) in enumerate(zip(test_rows, pred, strict=False))]  # fmt: skip
    val = splits["val"]
    val_pred = predict_logits(model, val["ids"], val["lengths"], device, p.predict.batch_size).argmax(1)
    with atomic_path(paths.predictions) as out:
        out.mkdir()
        write_csv(out / "test.csv", test, ["id", "label", "class_name", "confidence", "true_label"])
        write_csv(
            out / "val.csv", [{"true": int(t), "pred": int(q)} for t, q in zip(val["labels"], val_pred, strict=False)]
        )
    print(f"news-predict: {len(test)} test and {len(val_pred)} validation predictions -> {paths.predictions}")
    return paths.predictions


def predict_file(src: Path, out: Path, p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> dict:
    """Label any file of texts with the trained model: a CSV with a header naming the text column(s)
    (`news.data.text_fields`; id and label columns optional), AG News CSV (either headerless form) or a
    course-style JSON test file.

    Writes `out` (id, label, class name); when the file has labels, returns and prints the accuracy. The file's
    labels are compared with the predictions through the class NAMES (an AG CSV's labels are named by the
    classes.txt / class.txt next to it, or AG's own four names), so either AG form scores a model trained on
    the other; a label that maps to none of the model's classes is a DataError naming the file.
    """
    from stages.news.data import (
        ag_label_names,
        map_labels_by_name,
        read_ag_csv,
        read_headed_csv,
        read_records,
        rows_from_records,
    )

    check_output(out, inputs=(src,))
    set_kernels(common.kernels)
    set_threads(thread_count(p.threads, common.threads))
    device = resolve_device(common.device)
    _, meta = load_prepared(paths.prepared)
    classes, names = meta["classes"], meta["class_names"]
    # a label of a headed CSV or a JSON file is a class name, or a class value of the data the model was trained on
    label_names = {c: n for c, n in zip(classes, names, strict=True)}
    label_names.update({n: n for n in names})
    d = p.data
    if src.suffix == ".csv":
        rows = read_headed_csv(src, d.text_fields, d.label_field, d.id_field)
        if rows is None:  # no header naming the text column(s): an AG News CSV
            try:
                rows, form = read_ag_csv(src)
            except DataError as err:
                raise DataError(f"{err}; or give a header row naming the columns {', '.join(d.text_fields)} "
                                f"(and optionally {d.id_field}, {d.label_field})") from None  # fmt: skip
            label_names = ag_label_names(src, form)
    else:
        rows = rows_from_records(read_records(src), src, d.text_fields, d.label_field, d.id_field, labelled=False)
    rows = map_labels_by_name(rows, label_names, classes, names, src)
    tokenizer = Tokenizer.load(paths.prepared / "tokenizer.json")
    model = load_model(paths.model, device)
    ids, lengths = tokenizer.encode_batch([r.text for r in rows])
    pred = predict_logits(model, ids, lengths, device, p.predict.batch_size).argmax(1)
    write_csv(
        out, [{"id": r.id, "label": classes[k], "class_name": names[k]} for r, k in zip(rows, pred, strict=False)]
    )
    result = {"rows": len(rows)}
    labelled = [(r.label, classes[k]) for r, k in zip(rows, pred, strict=False) if r.label is not None]
    if labelled:
        result["accuracy"] = float(np.mean([t == q for t, q in labelled]))
    print(f"news-predict: {src} -> {out}: {result}")
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def cli() -> None:
    """No arguments: the DVC stage. `--input FILE --output CSV`: label another file with the trained model."""
    import argparse

    parser = argparse.ArgumentParser(description=cli.__doc__)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.input is None:
        run(*config.load(), config.Paths())
    else:
        predict_file(args.input, args.output or Path("predictions.csv"), *config.load(), config.Paths())


if __name__ == "__main__":
    main(cli)
