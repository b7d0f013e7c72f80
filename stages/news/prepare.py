"""news-prepare: tokenizer + vocabulary from the train texts only, integer sequences, stratified validation split.

Writes data/news/prepared/: `tokenizer.json` (the whole text→ids mapping, reused by
predict), `{train,val,test}.npz` (ids (N, max_len) padded with 0, lengths, labels as
class indices or -1), `texts.json` (the raw texts of each split, for news-evaluate's TF-IDF baseline), `meta.json` (classes, ids of the test rows, statistics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, atomic_path, write_json
from stages.news import config
from stages.news.data import Row, read_raw
from stages.news.text import Tokenizer


def run(p: config.NewsParams, common: config.CommonParams, paths: config.Paths) -> Path:
    q = p.prepare
    if q.max_len > p.model.max_len:
        from stages.common.params import ParamsError

        raise ParamsError(f"news.prepare.max_len ({q.max_len}) exceeds news.model.max_len ({p.model.max_len})")
    splits, meta = read_raw(paths.raw)
    classes = meta["classes"]
    if "dev" in splits:  # the source has its own labelled dev split: use it as validation
        train, val = splits["train"], splits["dev"]
    else:
        train, val = stratified_split(splits["train"], q.val_fraction, q.seed)
    if not splits["test"]:
        raise DataError(f"{paths.raw / 'test.jsonl'}: no test rows")
    tokenizer = Tokenizer.train(
        (r.text for r in train), q.tokenizer, q.lowercase, q.mask_numbers, q.min_freq, q.max_vocab, q.bpe_merges,
        q.max_len,
    )  # fmt: skip
    stats = {}
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        tokenizer.save(out / "tokenizer.json")
        for name, rows in (("train", train), ("val", val), ("test", splits["test"])):
            ids, lengths, labels = encode_rows(tokenizer, rows, classes)
            np.savez(out / f"{name}.npz", ids=ids, lengths=lengths, labels=labels)
            tokens = [len(tokenizer.tokens(r.text)) for r in rows[:2000]]
            stats[name] = {
                "rows": len(rows),
                "mean_tokens": round(float(np.mean(tokens)), 1),
                "truncated_share": round(float(np.mean([t + 1 > q.max_len for t in tokens])), 4),
                "unk_share": round(float((ids == 1).sum() / max(1, lengths.sum())), 4),
            }
        # the raw texts of every split, for the bag-of-n-grams baseline of news-evaluate (its own tokenisation)
        write_json(out / "texts.json", {name: [r.text for r in rows] for name, rows in
                                        (("train", train), ("val", val), ("test", splits["test"]))})  # fmt: skip
        write_json(out / "meta.json", {
            "classes": classes, "class_names": meta["class_names"], "id_column": meta["id_column"],
            "label_column": meta["label_column"], "test_ids": [r.id for r in splits["test"]],
            "vocab_size": len(tokenizer.vocab), "merges": len(tokenizer.merges), "stats": stats,
            "validation": "dev split of the source" if "dev" in splits else f"stratified {q.val_fraction} of train",
        })  # fmt: skip
    print(f"news-prepare: vocab {len(tokenizer.vocab)} ({q.tokenizer}), "
          + ", ".join(f"{k} {v['rows']}" for k, v in stats.items()) + f" -> {paths.prepared}")  # fmt: skip
    return paths.prepared


def stratified_split(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Hold out `fraction` of every class (at least one row of each class with 2+ rows), in a seeded order."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_class.setdefault(r.label, []).append(i)
    held = set()
    for label in sorted(by_class):
        members = by_class[label]
        n = round(len(members) * fraction)
        n = min(max(n, 1 if len(members) > 1 else 0), len(members) - 1)
        held.update(rng.permutation(members)[:n].tolist())
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def encode_rows(tokenizer: Tokenizer, rows: list[Row], classes: list[str]) -> tuple[np.ndarray, ...]:
    index = {c: i for i, c in enumerate(classes)}
    ids, lengths = tokenizer.encode_batch([r.text for r in rows])
    labels = np.array([index[r.label] if r.label is not None else -1 for r in rows], dtype=np.int64)
    return ids, lengths, labels


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
