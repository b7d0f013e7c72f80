"""vit-evaluate: accuracy of the final model on the test set (overall, per class, confusion matrix) and on the
un-augmented train set, against the course's targets; metrics/vit.json, plots/vit/confusion_matrix.png.
The accuracies are logged to MLflow too (experiment `vit`, run `vit-evaluate`)."""

from __future__ import annotations

import numpy as np
import torch

from stages.common.cli import main
from stages.common.headlines import write_evaluation
from stages.common.io import read_json
from stages.common.plots import confusion_matrix_plot
from stages.common.runtime import setup, thread_count
from stages.common.tracking import tracked_run
from stages.vit import config
from stages.vit.data import load_prepared
from stages.vit.model import load_model, predict


def run(p: config.VitParams, common: config.CommonParams, paths: config.Paths) -> dict:
    device = setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels)
    splits, meta = load_prepared(paths.prepared)
    model, saved = load_model(paths.model, device)
    train_summary = read_json(paths.train_metrics)
    acc = {}
    for split in ("train", "test"):
        x, y = splits[split]
        pred = predict(model, torch.as_tensor(x), saved["mean"], saved["std"], device).argmax(-1).numpy()
        acc[split] = (pred, y)
    pred, y = acc["test"]
    k = len(meta["classes"])
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y, pred), 1)
    metrics = {
        "test_accuracy": round(float((pred == y).mean()), 4),
        "train_accuracy": round(float((acc["train"][0] == acc["train"][1]).mean()), 4),
        "final_train_loss": train_summary["final_train_loss"],
        "epochs": train_summary["epochs"],
        "parameters": train_summary["parameters"],
        "test_images": int(len(y)),
        "per_class_test_accuracy": {
            c: round(float(cm[i, i] / max(cm[i].sum(), 1)), 4) for i, c in enumerate(meta["classes"])
        },  # fmt: skip
        "course_targets": config.TARGETS,
    }
    metrics["meets_course_test_target"] = metrics["test_accuracy"] >= config.TARGETS["test_accuracy_min"]
    metrics["meets_course_loss_target"] = metrics["final_train_loss"] <= config.TARGETS["train_loss_max"]
    confusion_matrix_plot(paths.plots / "confusion_matrix.png", cm, meta["classes"], "vit: test confusion matrix")
    write_evaluation(config.TASK, metrics, paths.root, paths.metrics)
    with tracked_run(config.TASK, "vit-evaluate", {"seed": p.seed}, common.mlflow, paths.root) as tracker:
        per_class = {f"test_accuracy.{c}": v for c, v in metrics["per_class_test_accuracy"].items()}
        tracker.log_metrics({k: metrics[k] for k in ("test_accuracy", "train_accuracy")} | per_class)
        tracker.log_artifact(paths.plots / "confusion_matrix.png")
    print(f"vit-evaluate: test accuracy {metrics['test_accuracy']:.4f}, train accuracy {metrics['train_accuracy']:.4f}")
    return metrics


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
