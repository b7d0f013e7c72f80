"""mygo-evaluate: validation accuracy of each model (single view and TTA) and of the ensemble,
per-class accuracy and the confusion matrix of the final predictions, and a grid of mistakes.

The final predictions are predict's: the ensemble (`mygo.predict.ensemble`) of the TTA-averaged members.
"""

from __future__ import annotations

import numpy as np

from stages.common.cli import main
from stages.common.headlines import write_evaluation
from stages.common.io import DataError, read_json, write_csv
from stages.common.params import flatten, to_dict
from stages.common.plots import confusion_matrix_plot, image_grid
from stages.common.tracking import tracked_run
from stages.mygo import config, ensemble
from stages.mygo.data import load_prepared, read_predictions

GRID = 24


def run(p: config.MygoParams, common: config.CommonParams, paths: config.Paths) -> dict:
    data = load_prepared(paths.prepared)
    labels, classes = data["valid_labels"], data["classes"]
    meta = read_json(paths.predictions / "meta.json")
    if meta["classes"] != classes:
        raise DataError(f"{paths.predictions / 'meta.json'}: made for other classes; re-run mygo-predict")
    logits = {name: load_logits(paths, name, "valid", len(labels), len(classes)) for name in meta["models"]}

    models = {}
    for name, views in logits.items():
        models[name] = {
            "single": ensemble.accuracy(views[0].argmax(-1), labels),
            "tta": ensemble.accuracy(ensemble.tta(views).argmax(-1), labels),
        }
    final = read_predictions(paths.predictions / "valid.csv", len(labels))
    ensemble_single = ensemble.combine([v[0] for v in logits.values()], meta["ensemble"])
    best_name = max(models, key=lambda n: models[n]["tta"])
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, (labels, final), 1)
    per_class = {c: float(cm[i, i] / max(1, cm[i].sum())) for i, c in enumerate(classes)}
    metrics = {
        "models": models,
        "views": meta["views"],
        "ensemble_method": meta["ensemble"],
        "ensemble_single_view": ensemble.accuracy(ensemble_single, labels),
        "accuracy": ensemble.accuracy(final, labels),  # the final predictions: ensemble of TTA members
        "best_single_model": best_name,
        "best_single_accuracy": max(m["single"] for m in models.values()),
        "best_tta_accuracy": models[best_name]["tta"],
        "per_class_accuracy": per_class,
        "n_valid": len(labels),
    }
    metrics["ensemble_gain"] = metrics["accuracy"] - max(metrics["best_tta_accuracy"], metrics["best_single_accuracy"])
    metrics["passes"] = {name: metrics["accuracy"] >= threshold for name, threshold in config.BASELINES.items()}

    write_evaluation(config.TASK, metrics, paths.root, paths.metrics / "mygo.json")
    write_csv(paths.plots / "per_class.csv", [{"class": c, "accuracy": a} for c, a in per_class.items()])
    confusion_matrix_plot(
        paths.plots / "confusion.png", cm, classes, f"mygo validation (accuracy {metrics['accuracy']:.3f})"
    )
    wrong = np.flatnonzero(final != labels)[:GRID]
    if len(wrong):
        image_grid(
            paths.plots / "misclassified.png", [data["valid_images"][i] for i in wrong], ncols=8,
            titles=[f"{classes[labels[i]][:10]}→{classes[final[i]][:10]}" for i in wrong], scale=1.5,
            suptitle="mygo: misclassified validation images (true→predicted)",
        )  # fmt: skip
    else:
        image_grid(paths.plots / "misclassified.png", [data["valid_images"][0]], ncols=1, titles=["no mistakes"])
    with tracked_run(config.TASK, "mygo-evaluate", {"predict": to_dict(p.predict)}, common.mlflow,
                     background=True) as tracker:  # fmt: skip
        tracker.log_metrics({k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float))})
        tracker.log_artifact(paths.plots / "confusion.png")
    print(f"mygo-evaluate: accuracy {metrics['accuracy']:.4f} (best single {metrics['best_single_accuracy']:.4f}, "
          f"best TTA {metrics['best_tta_accuracy']:.4f}, ensemble single-view {metrics['ensemble_single_view']:.4f})")  # fmt: skip
    return metrics


def load_logits(paths: config.Paths, name: str, split: str, n: int, n_classes: int) -> np.ndarray:
    file = paths.predictions / f"{name}_{split}.npy"
    if not file.is_file():
        raise DataError(f"{file}: not found; re-run mygo-predict")
    logits = np.load(file, allow_pickle=False)
    if logits.ndim != 3 or logits.shape[1:] != (n, n_classes):
        raise DataError(f"{file}: expected logits (views, {n}, {n_classes}), got {logits.shape}")
    return logits


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
