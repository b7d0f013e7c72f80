"""coco-caption-evaluate: BLEU-1..4 on validation per configuration, with the final train losses,
into metrics/coco-caption.json keyed by configuration.

BLEU: nltk `corpus_bleu` over the sampled val images, one hypothesis (the generated caption) per image
against all of that image's val captions as references, uniform n-gram weights, smoothing method1
(Chen & Cherry 2014) so that a missing 4-gram gives a small score instead of 0.
The scores are logged to MLflow too (experiment `coco-caption`, run `coco-caption-evaluate`, `<config>.bleu4`).
"""

from __future__ import annotations

from stages.coco_caption import config
from stages.coco_caption.data import load_prepared
from stages.common.bleu import corpus_bleu
from stages.common.cli import main
from stages.common.headlines import write_evaluation
from stages.common.io import DataError, read_json
from stages.common.tracking import tracked_run


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """BLEU-1..4 as fractions, whitespace tokens (the captions are already the vocabulary's words)."""
    scores = corpus_bleu([h.split() for h in hypotheses], [[r.split() for r in rs] for rs in references])
    return {k: round(v, 4) for k, v in scores.items()}


def run(p: config.CocoCaptionParams, common: config.CommonParams, paths: config.Paths) -> dict:
    _, meta = load_prepared(paths.prepared)
    refs = meta["val_references"]
    out = {}
    for name in p.configs:
        pred = read_json(paths.predictions(name))
        train = read_json(paths.train_metrics(name))
        missing = [r["image"] for r in pred["val"] if str(r["image"]) not in refs]
        if missing:
            raise DataError(f"{paths.predictions(name)}: val image {missing[0]} has no reference captions")
        scores = bleu([r["caption"] for r in pred["val"]], [refs[str(r["image"])] for r in pred["val"]])
        out[name] = {
            **scores,
            "val_images": len(pred["val"]),
            "final_train_loss": train["final_train_loss"],
            "course_target_loss": train["course_target_loss"],
            "meets_target": train["meets_target"],
            "num_heads": train["num_heads"],
            "num_layers": train["num_layers"],
            "lr": train["lr"],
        }
        print(f"coco-caption-evaluate {name}: loss {train['final_train_loss']:.4f} " + " ".join(
            f"{k} {v:.3f}" for k, v in scores.items()))  # fmt: skip
    write_evaluation(config.TASK, out, paths.root, paths.metrics)
    with tracked_run(
        config.TASK, "coco-caption-evaluate", {"configs": list(p.configs)}, common.mlflow, paths.root, background=True
    ) as t:
        t.log_metrics({f"{name}.{k}": v for name, r in out.items() for k, v in r.items() if k.startswith("bleu")})
    return out


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
