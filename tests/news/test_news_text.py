"""The text pipeline: normalisation, tokenisers, BPE, vocabulary, encoding, split."""

from __future__ import annotations

from stages.news.data import Row
from stages.news.prepare import stratified_split
from stages.news.text import CLS, PAD, UNK, Tokenizer, apply_bpe, learn_bpe, normalise


def test_normalise() -> None:
    assert normalise("Bush #39;s  PLAN &amp; 2004\n") == "bush's plan & 0"
    assert normalise("Ünïcode ﬁne", lowercase=False, mask_numbers=False) == "Ünïcode fine"


def test_bpe_learns_frequent_pairs_deterministically() -> None:
    counts = {"lower": 5, "lowest": 3, "newer": 6, "wider": 2}
    merges = learn_bpe(counts, 10)
    assert merges == learn_bpe(dict(reversed(list(counts.items()))), 10)
    assert merges[0] == ("w", "e")  # in lower, lowest and newer: 14 times
    ranks = {m: i for i, m in enumerate(merges)}
    pieces = apply_bpe("lower", ranks)
    assert "".join(pieces) == "lower</w>" and len(pieces) < 6


def test_tokenizer_vocab_encode_and_roundtrip(tmp_path) -> None:
    texts = ["the cat sat", "the cat ran", "the dog ran"]
    tok = Tokenizer.train(texts, "wordpunct", min_freq=2, max_vocab=5, max_len=3)
    assert tok.vocab[:3] == [PAD, UNK, CLS]
    assert tok.vocab[3:] == ["the", "cat"]  # most frequent first, ties alphabetical, capped at max_vocab
    assert tok.encode("The zebra ran far") == [2, 3, 1]  # [CLS] the [UNK], truncated to 3
    ids, lengths = tok.encode_batch(["cat", "the the the the"])
    assert ids.tolist() == [[2, 4, 0], [2, 3, 3]] and lengths.tolist() == [2, 3]
    tok.save(tmp_path / "tok.json")
    again = Tokenizer.load(tmp_path / "tok.json")
    assert again.encode("the cat ran") == tok.encode("the cat ran")
    bpe = Tokenizer.train(texts * 3, "bpe", min_freq=1, bpe_merges=20)
    bpe.save(tmp_path / "bpe.json")
    assert Tokenizer.load(tmp_path / "bpe.json").encode("the cats") == bpe.encode("the cats")
    assert UNK not in [bpe.vocab[i] for i in bpe.encode("the cat")]


def test_stratified_split_keeps_class_shares() -> None:
    rows = [Row(str(i), "t", "a" if i < 80 else "b") for i in range(100)]
    train, val = stratified_split(rows, 0.25, seed=0)
    assert len(val) == 25 and sum(r.label == "a" for r in val) == 20
    assert {r.id for r in train}.isdisjoint({r.id for r in val})
    assert stratified_split(rows, 0.25, seed=0) == (train, val)
