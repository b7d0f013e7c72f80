"""Word2Vec / FastText (gensim) trained on the tokenised train texts, to initialise the embedding."""

from __future__ import annotations

import zlib

import numpy as np

from stages.news.text import SPECIALS


def train_vectors(
    kind: str,
    sequences: np.ndarray,
    lengths: np.ndarray,
    vocab: list[str],
    dim: int,
    epochs: int,
    seed: int,
    window: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """(vocab_size, dim) vectors and a bool mask of the rows that got one; one worker, so deterministic."""
    from gensim.models import FastText, Word2Vec

    sentences = [[vocab[i] for i in seq[1:n]] for seq, n in zip(sequences, lengths, strict=False)]  # drop [CLS]
    model_class = Word2Vec if kind == "word2vec" else FastText
    model = model_class(
        sentences,
        vector_size=dim,
        window=window,
        min_count=1,
        workers=1,
        seed=seed,
        epochs=epochs,
        sg=1,
        hashfxn=_stable_hash,
    )  # Python's hash() is salted per process
    vectors = np.zeros((len(vocab), dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, token in enumerate(vocab):
        if token not in SPECIALS and token in model.wv.key_to_index:
            vectors[i], found[i] = model.wv[token], True
    return vectors, found


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))
