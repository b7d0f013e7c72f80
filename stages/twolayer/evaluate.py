"""twolayer-evaluate: both trained models on the test split: accuracy, the ratio two-layer / ResNet34 (the
sheet's bar ≥ 0.90), parameters, forward FLOPs per image (torch.utils.flop_counter), the layer count
under the rule in model.py, the receptive field of the last feature map, and CPU ms per image.

Writes metrics/twolayer.json (deterministic numbers only), timings/twolayer.json (ms per image),
plots/twolayer/accuracy.png and loss.png (per-epoch train/val curves of both models).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from stages.common.cli import main
from stages.common.headlines import write_evaluation
from stages.common.io import DataError, read_json
from stages.common.plots import line_plot
from stages.common.runtime import setup, thread_count, write_timings
from stages.common.stats import paired_ratio_interval
from stages.mini_imagenet.data import load_classes, load_split, to_tensor
from stages.twolayer import config
from stages.twolayer.images import predict, resize
from stages.twolayer.model import count_layers, load_model

STAGE = "twolayer-evaluate"


def flops_per_image(model: torch.nn.Module, size: int) -> int:
    """Forward FLOPs of one size×size image, as torch's FlopCounterMode counts them (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops())


def receptive_field(model: torch.nn.Module, size: int) -> float:
    """Fraction of input pixels that reach the centre position of the last feature map (the input of the
    output layer), from the gradient of its channel sum: 1.0 = a global receptive field."""
    last = model.output_layer if hasattr(model, "output_layer") else model.avgpool
    seen: dict[str, torch.Tensor] = {}
    hook = last.register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0]))
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    try:
        model.eval()
        model(x)
    finally:
        hook.remove()
    feat = seen["x"]
    feat[0, :, feat.shape[2] // 2, feat.shape[3] // 2].sum().backward()
    return round(float((x.grad.abs().sum(1) > 0).float().mean()), 4)


def cpu_ms_per_image(model: torch.nn.Module, images: np.ndarray, repeats: int) -> float:
    """Best-of-`repeats` mean CPU latency, batch 1, at the current thread count."""
    x = to_tensor(images)
    best = float("inf")
    with torch.inference_mode():
        model(x[:1])  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(len(x)):
                model(x[i : i + 1])
            best = min(best, (time.perf_counter() - start) / len(x))
    return round(best * 1000, 3)


def run(p: config.TwolayerParams, common: config.CommonParams, paths: config.Paths) -> dict:
    config.validate(p, evaluate=True)
    device = setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels)
    classes = load_classes(paths.data)
    xte, yte = load_split(paths.data, "test")
    if len(yte) == 0:
        raise DataError(f"{paths.data / 'test.npz'}: no test images")
    results, timings, histories, correct = {}, {}, {}, {}
    for name in config.MODELS:
        model, saved = load_model(paths.model(name))
        if saved["classes"] != classes:
            raise DataError(f"{paths.model(name)}: trained on other classes than {paths.data}; re-run twolayer-train")
        size = saved["image_size"]
        x = resize(xte, size)
        pred = predict(model.to(device), x, device).argmax(-1).numpy()
        correct[name] = pred == yte
        model = model.cpu()
        layers = count_layers(model, size)
        train = read_json(paths.train_metrics(name))
        results[name] = {
            "test_accuracy": round(float((pred == yte).mean()), 4),
            "best_val_accuracy": round(train["best_val_accuracy"], 4),
            "best_epoch": train["best_epoch"],
            "final_train_accuracy": train["final_train_accuracy"],
            "parameters": int(sum(q.numel() for q in model.parameters())),
            "flops": flops_per_image(model, size),
            "main_layers": layers["main_layers"],
            "total_layers": layers["total_layers"],
            "weight_ops": layers["weight_ops"],
            "layers": [{k: r[k] for k in ("layer", "role", "kind", "weight_ops")} for r in layers["layers"]]
            if name == "twolayer" else [],
            "receptive_field": receptive_field(model, size),
            "image_size": size,
            "epochs": train["epochs"],
        }  # fmt: skip
        timings[name] = {"cpu_ms_per_image": cpu_ms_per_image(model, x[: p.evaluate.timing_images],
                                                              p.evaluate.timing_repeats)}  # fmt: skip
        histories[name] = read_history(paths.history(name))
    two, ref = results["twolayer"], results["resnet34"]
    ratio = round(two["test_accuracy"] / ref["test_accuracy"], 4) if ref["test_accuracy"] > 0 else None
    ci = paired_ratio_interval(correct["twolayer"], correct["resnet34"], config.CI_RESAMPLES, config.CI_LEVEL)
    metrics = {
        **results,
        "ratio": ratio,
        "meets_bar": ratio is not None and ratio >= config.RATIO_BAR,
        "bar": config.RATIO_BAR,
        # the test set's own uncertainty on the ratio (the seeds' spread is the other part: the report adds it)
        "ratio_ci": None
        if ci is None
        else {
            "low": round(ci["low"], 4),
            "high": round(ci["high"], 4),
            "std": round(ci["std"], 4),
            "level": config.CI_LEVEL,
            "resamples": config.CI_RESAMPLES,
            "method": "paired bootstrap over the test images",
        },
        "ci_clears_bar": ci is not None and ci["low"] >= config.RATIO_BAR,
        "ci_clears_one": ci is not None and ci["low"] >= 1.0,
        "flops_ratio": round(two["flops"] / ref["flops"], 4),
        "parameters_ratio": round(two["parameters"] / ref["parameters"], 4),
        "test_images": int(len(yte)),
        "classes": len(classes),
        "chance": round(1 / len(classes), 4),
    }
    timings["threads"] = torch.get_num_threads()
    timings["timing_images"] = min(p.evaluate.timing_images, len(xte))
    plot_curves(paths, histories)
    write_evaluation(config.TASK, metrics, paths.root, paths.metrics)
    write_timings(paths.timings(STAGE), timings)
    print(f"twolayer-evaluate: test accuracy twolayer {two['test_accuracy']:.4f}, resnet34 {ref['test_accuracy']:.4f},"
          f" ratio {ratio}; GFLOPs {two['flops'] / 1e9:.3f} vs {ref['flops'] / 1e9:.3f}")  # fmt: skip
    return metrics


def read_history(path) -> list[dict]:
    import csv

    if not path.is_file():
        raise DataError(f"{path}: file not found (run twolayer-train)")
    with path.open(encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_curves(paths: config.Paths, histories: dict[str, list[dict]]) -> None:
    """accuracy.png and loss.png: train and val of both models per epoch."""
    epochs = sorted({int(r["epoch"]) for h in histories.values() for r in h})
    rows = [{"epoch": e} for e in epochs]
    for name, history in histories.items():
        by_epoch = {int(r["epoch"]): r for r in history}
        for row in rows:
            for key in ("train_accuracy", "val_accuracy", "train_loss", "val_loss"):
                row[f"{name} {key}"] = by_epoch.get(row["epoch"], {}).get(key)
    names = list(histories)
    line_plot(paths.plots / "accuracy.png", rows, "epoch",
              [f"{n} {k}" for n in names for k in ("train_accuracy", "val_accuracy")],
              "twolayer vs resnet34: accuracy per epoch", "accuracy")  # fmt: skip
    line_plot(paths.plots / "loss.png", rows, "epoch",
              [f"{n} {k}" for n in names for k in ("train_loss", "val_loss")],
              "twolayer vs resnet34: loss per epoch (train with label smoothing)", "cross-entropy")  # fmt: skip


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
