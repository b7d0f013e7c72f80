"""Corpus BLEU-1..4 (nltk `corpus_bleu`, uniform n-gram weights, smoothing method1, Chen & Cherry 2014).

Callers tokenise (the tokenisation is part of the number they report) and round.
"""

from __future__ import annotations

WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3,) * 3, 4: (0.25,) * 4}


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]]) -> dict[str, float]:
    """{'bleu1': …, 'bleu4': …} as fractions in [0, 1]; one hypothesis and its list of references per item."""
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import corpus_bleu as nltk_bleu

    smooth = SmoothingFunction().method1
    return {
        f"bleu{n}": float(nltk_bleu(references, hypotheses, weights=w, smoothing_function=smooth))
        for n, w in WEIGHTS.items()
    }
