"""The project's own text pipeline: normalise, tokenise, build a vocabulary, map to integer sequences.

No pretrained tokenizer and no high-level text API: NLTK tokenizers that need no
downloaded data (`wordpunct`, `treebank`), or a byte-pair encoding (`bpe`) learned
here from the training texts only. The whole mapping is saved as one JSON file, so
predict encodes new texts exactly as train saw them.
"""

from __future__ import annotations

import collections
import html
import itertools
import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.io import DataError, write_json

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
SPECIALS = (PAD, UNK, CLS)  # ids 0, 1, 2
END = "</w>"  # BPE end-of-word marker

_AG_ENTITY = re.compile(r"\s?#(\d+);")  # AG News keeps HTML entities as ' #39;' (= "'")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def normalise(text: str, lowercase: bool = True, mask_numbers: bool = True) -> str:
    text = _AG_ENTITY.sub(lambda m: chr(int(m.group(1))) if int(m.group(1)) < 0x110000 else " ", text)
    text = unicodedata.normalize("NFKC", html.unescape(text)).replace("\\", " ")
    if lowercase:
        text = text.lower()
    if mask_numbers:
        text = _DIGITS.sub("0", text)
    return _SPACES.sub(" ", text).strip()


def word_tokenizer(kind: str):
    """An NLTK tokenizer that works offline (see ENVIRONMENT.md)."""
    if kind in ("wordpunct", "bpe"):  # bpe splits wordpunct's words further
        from nltk.tokenize import wordpunct_tokenize

        return wordpunct_tokenize
    if kind == "treebank":
        from nltk.tokenize import TreebankWordTokenizer

        return TreebankWordTokenizer().tokenize
    raise ValueError(f"unknown tokenizer '{kind}'")


# ---------------------------------------------------------------- byte-pair encoding


def learn_bpe(word_counts: dict[str, int], n_merges: int) -> list[tuple[str, str]]:
    """Sennrich et al. (2016): repeatedly merge the most frequent adjacent symbol pair.

    Incremental: only the words that contain the merged pair are re-counted.
    Ties are broken by the pair itself, so the result is deterministic.
    """
    words = [(list(w) + [END], c) for w, c in sorted(word_counts.items())]
    pairs: collections.Counter = collections.Counter()
    where: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for i, (symbols, count) in enumerate(words):
        for pair in itertools.pairwise(symbols):
            pairs[pair] += count
            where[pair].add(i)
    merges = []
    for _ in range(n_merges):
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        merged = best[0] + best[1]
        for i in sorted(where.pop(best, ())):
            symbols, count = words[i]
            for pair in itertools.pairwise(symbols):  # forget the old pairs of this word
                pairs[pair] -= count
                if pairs[pair] <= 0:
                    del pairs[pair]
            new, j = [], 0
            while j < len(symbols):
                if j < len(symbols) - 1 and (symbols[j], symbols[j + 1]) == best:
                    new.append(merged)
                    j += 2
                else:
                    new.append(symbols[j])
                    j += 1
            words[i] = (new, count)
            for pair in itertools.pairwise(new):
                pairs[pair] += count
                where[pair].add(i)
    return merges


def apply_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    symbols = list(word) + [END]
    while len(symbols) > 1:
        candidates = [(ranks.get(pair, 1 << 30), k) for k, pair in enumerate(itertools.pairwise(symbols))]
        rank, k = min(candidates)
        if rank == 1 << 30:
            break
        symbols[k : k + 2] = [symbols[k] + symbols[k + 1]]
    return symbols


# ---------------------------------------------------------------- the tokenizer artifact


class Tokenizer:
    """Normalisation + tokeniser + vocabulary; `encode` gives [CLS] + ids, truncated to `max_len`."""

    def __init__(self, settings: dict[str, Any], vocab: list[str], merges: list[tuple[str, str]] | None = None):
        self.settings = settings
        self.vocab = vocab
        self.index = {t: i for i, t in enumerate(vocab)}
        self.merges = [tuple(m) for m in merges or []]
        self._ranks = {pair: r for r, pair in enumerate(self.merges)}
        self._split = word_tokenizer(settings["tokenizer"])
        self._cache: dict[str, list[str]] = {}

    # -- building
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        tokenizer: str = "wordpunct",
        lowercase: bool = True,
        mask_numbers: bool = True,
        min_freq: int = 2,
        max_vocab: int = 20000,
        bpe_merges: int = 2000,
        max_len: int = 64,
    ) -> Tokenizer:
        settings = {"tokenizer": tokenizer, "lowercase": lowercase, "mask_numbers": mask_numbers, "max_len": max_len}
        split = word_tokenizer(tokenizer)
        words = collections.Counter(w for t in texts for w in split(normalise(t, lowercase, mask_numbers)))
        merges: list[tuple[str, str]] = []
        if tokenizer == "bpe":
            merges = learn_bpe(dict(words), bpe_merges)
            ranks = {pair: r for r, pair in enumerate(merges)}
            counts: collections.Counter = collections.Counter()
            for w, c in words.items():
                for piece in apply_bpe(w, ranks):
                    counts[piece] += c
        else:
            counts = words
        # most frequent first, ties alphabetical: deterministic
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        vocab = list(SPECIALS) + kept[: max(0, max_vocab - len(SPECIALS))]
        return cls(settings, vocab, merges)

    # -- using
    def tokens(self, text: str) -> list[str]:
        s = self.settings
        words = self._split(normalise(text, s["lowercase"], s["mask_numbers"]))
        if s["tokenizer"] != "bpe":
            return words
        out = []
        for w in words:
            if w not in self._cache:
                self._cache[w] = apply_bpe(w, self._ranks)
            out.extend(self._cache[w])
        return out

    def encode(self, text: str) -> list[int]:
        unk = self.index[UNK]
        ids = [self.index[CLS]] + [self.index.get(t, unk) for t in self.tokens(text)]
        return ids[: self.settings["max_len"]]

    def encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(N, max_len) int32 ids padded with 0, and (N,) lengths."""
        max_len = self.settings["max_len"]
        ids = np.zeros((len(texts), max_len), dtype=np.int32)
        lengths = np.zeros(len(texts), dtype=np.int32)
        for i, text in enumerate(texts):
            seq = self.encode(text)
            ids[i, : len(seq)] = seq
            lengths[i] = len(seq)
        return ids, lengths

    # -- saving
    def save(self, path: Path) -> None:
        write_json(path, {"settings": self.settings, "vocab": self.vocab, "merges": [list(m) for m in self.merges]})

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        if not path.is_file():
            raise DataError(f"{path}: tokenizer file not found (run news-prepare)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["settings"], data["vocab"], data["merges"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path}: not a tokenizer file ({err})") from None
