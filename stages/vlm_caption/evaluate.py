"""vlm-caption-evaluate: corpus BLEU on the validation split, as a percentage, with a trivial baseline.

BLEU: nltk `corpus_bleu`, one hypothesis per distinct validation image against all of that image's
captions as references, uniform weights up to 4-grams, smoothing method1 (Chen & Cherry 2014), the same
choice as coco-caption. Tokenisation: lower-cased, words and punctuation marks as separate tokens
(regex `\\w+|[^\\w\\s]`). The course's BLEU.py is not public; its numbers may differ in tokenisation.
Baseline: the most common training caption, given for every image. Writes metrics/vlm-caption.json.
"""

from __future__ import annotations

import re
from collections import Counter

from stages.common.bleu import corpus_bleu
from stages.common.cli import main
from stages.common.io import DataError, read_json, write_json
from stages.common.tracking import tracked_run
from stages.vlm_caption import config, data

TOKENISATION = "lowercase; regex \\w+|[^\\w\\s] (punctuation split off)"
TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """BLEU-1..4 as percentages, on `tokenize`d captions."""
    scores = corpus_bleu([tokenize(h) for h in hypotheses], [[tokenize(r) for r in rs] for rs in references])
    return {k: round(100 * v, 2) for k, v in scores.items()}


def most_common_caption(rows: list[dict]) -> str:
    return Counter(r["caption"] for r in rows).most_common(1)[0][0]


def run(p: config.VlmCaptionParams, common: config.CommonParams, paths: config.Paths) -> dict:
    refs = data.references(data.load_split(paths.prepared, "valid"))
    pred = read_json(paths.predictions)["valid"]
    missing = [r["key"] for r in pred if r["key"] not in refs]
    if missing or len(pred) != len(refs):
        raise DataError(f"{paths.predictions}: predictions do not match the validation images of {paths.prepared}")
    baseline_caption = most_common_caption(data.load_split(paths.prepared, "train"))
    ref_lists = [refs[r["key"]] for r in pred]
    model_scores = bleu([r["output"] for r in pred], ref_lists)
    baseline_scores = bleu([baseline_caption] * len(pred), ref_lists)
    train = read_json(paths.train_metrics)
    out = {
        "bleu": model_scores["bleu4"],
        **model_scores,
        "baseline_bleu": baseline_scores["bleu4"],
        "baseline": {**baseline_scores, "caption": baseline_caption},
        "exact_match": round(sum(r["output"] in refs[r["key"]] for r in pred) / len(pred), 4),
        "valid_images": len(pred),
        "references_per_image": round(sum(map(len, ref_lists)) / len(ref_lists), 2),
        "bleu_implementation": "nltk corpus_bleu, 4-gram uniform weights, smoothing method1, percentage",
        "tokenisation": TOKENISATION,
        "backend": train["backend"],
        "final_train_loss": train["final_train_loss"],
        "train_steps": train["steps"],
    }
    write_json(paths.metrics, out)
    with tracked_run(
        config.TASK, "vlm-caption-evaluate", {"valid_images": len(pred)}, common.mlflow, paths.root, background=True
    ) as tracker:
        tracker.log_metrics({k: v for k, v in out.items() if isinstance(v, float)})
    print(f"vlm-caption-evaluate: BLEU {out['bleu']:.2f} (baseline {out['baseline_bleu']:.2f}: {baseline_caption!r})")
    return out


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
