"""dynconv-evaluate: both models on the test split for every channel subset (RGB, RG, RB, GB, R, G, B), at the
training resolution and at `dynconv.evaluate.second_size` (the raw test images resized to it: spatial
invariance shown, not claimed); parameters and FLOPs (torch.utils.flop_counter) of both and the dynamic
module's share of them; CPU ms per image (timings/dynconv-evaluate.json, not a metric).

Writes metrics/dynconv.json, plots/dynconv/subsets.csv (the `dvc plots` data of the bar chart) and
plots/dynconv/subsets.png (grouped bars, subset × model, with the run-to-run spread).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from stages.common.cli import main
from stages.common.headlines import write_evaluation
from stages.common.io import DataError, write_csv
from stages.common.params import to_dict
from stages.common.plots import _pyplot, _save
from stages.common.runtime import setup, write_timings
from stages.common.tracking import tracked_run
from stages.dynconv import config
from stages.dynconv.model import ChannelNet, load, predict, subset_mask
from stages.mini_imagenet.data import find_list, load_images, load_split, read_list, to_tensor

STAGE = "dynconv-evaluate"


def subset_accuracies(models: list[ChannelNet], x: torch.Tensor, y: torch.Tensor, batch_size: int, device) -> dict:
    """{subset: [accuracy of each run]}."""
    return {s: [round(float((predict(m, x, s, batch_size, device) == y).float().mean()), 6) for m in models]
            for s in config.SUBSETS}  # fmt: skip


def flops_and_params(model: ChannelNet, size: int) -> dict:
    """FLOPs of one size×size image (all channels present) and parameters, in total and of the first conv."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.cpu().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size), subset_mask("RGB", 1))
    by_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    return {
        "flops": int(counter.get_total_flops()),
        "first_conv_flops": int(by_module.get(f"{type(model).__name__}.stem", 0)),
        "parameters": sum(q.numel() for q in model.parameters()),
        "first_conv_parameters": sum(q.numel() for q in model.stem.parameters()),
    }


def ms_per_image(model: ChannelNet, size: int, batch_size: int, batches: int, device) -> float:
    x = torch.zeros(batch_size, 3, size, size, device=device)
    mask = subset_mask("RGB", batch_size).to(device)
    with torch.no_grad():
        model(x, mask)  # warm-up
        start = time.perf_counter()
        for _ in range(batches):
            model(x, mask)
    return round(1000 * (time.perf_counter() - start) / (batches * batch_size), 4)


def summarise(runs: dict) -> tuple[dict, dict]:
    mean = {s: round(statistics.fmean(v), 4) for s, v in runs.items()}
    spread = {s: round(statistics.pstdev(v), 4) if len(v) > 1 else 0.0 for s, v in runs.items()}
    return mean, spread


def run(p: config.DynconvParams, common: config.CommonParams, paths: config.Paths) -> dict:
    p.check_evaluate()
    e = p.evaluate
    device = setup(p.seed, common.device, common.threads, common.kernels)
    loaded = {name: load(paths.model(name), device) for name in config.MODELS}
    classes, size = loaded["dynamic"][1]["classes"], loaded["dynamic"][1]["image_size"]
    if loaded["naive"][1]["classes"] != classes or loaded["naive"][1]["image_size"] != size:
        raise DataError(f"{paths.model('naive')}: trained on other classes or image size than the dynamic model")
    x_u8, y = load_split(paths.prepared, "test")
    if x_u8.shape[1] != size:
        raise DataError(f"{paths.prepared}/test.npz: images are {x_u8.shape[1]} px, the models were trained at {size}")
    test_list = find_list(paths.raw, "test") or paths.raw / "test.txt"
    x2_u8, y2 = load_images(read_list(test_list, len(classes)), e.second_size)
    if not np.array_equal(y, y2):
        raise DataError(f"{test_list}: labels differ from {paths.prepared}/test.npz; re-run mini-imagenet-prepare")
    x, x2, y = to_tensor(x_u8), to_tensor(x2_u8), torch.as_tensor(y)
    result: dict = {"test_images": len(y), "classes": len(classes), "image_size": size, "second_size": e.second_size,
                    "runs": {}, "accuracy": {}, "spread": {}, "accuracy_second_size": {}, "spread_second_size": {},
                    "accuracy_runs": {}, "accuracy_second_size_runs": {}, "cost": {},
                    "channel_sampling": {}}  # fmt: skip
    timings = {"device": str(device), "threads": common.threads, "batch_size": e.batch_size, "ms_per_image": {}}
    for name, (models, blob) in loaded.items():
        runs = subset_accuracies(models, x, y, e.batch_size, device)
        runs2 = subset_accuracies(models, x2, y, e.batch_size, device)
        result["runs"][name] = len(models)
        result["channel_sampling"][name] = blob["variant"]["channel_sampling"]
        result["accuracy_runs"][name], result["accuracy_second_size_runs"][name] = runs, runs2
        result["accuracy"][name], result["spread"][name] = summarise(runs)
        result["accuracy_second_size"][name], result["spread_second_size"][name] = summarise(runs2)
        result["cost"][name] = flops_and_params(models[0], size)
        timings["ms_per_image"][name] = ms_per_image(models[0].to(device), size, e.batch_size, e.timing_batches, device)
    result.update(derived(result))
    rows = [{"bar": f"{s} {m}", "subset": s, "model": m, "accuracy": result["accuracy"][m][s],
             "std": result["spread"][m][s], "accuracy_second_size": result["accuracy_second_size"][m][s]}
            for s in config.SUBSETS for m in config.MODELS]  # fmt: skip
    tracked = {"seed": p.seed, "evaluate": to_dict(e)}
    with tracked_run(config.TASK, STAGE, tracked, common.mlflow, paths.root) as tracker:
        write_csv(paths.subsets_csv, rows)
        bar_chart(paths.plots / "subsets.png", result)
        write_evaluation(config.TASK, result, paths.root, paths.metrics)
        write_timings(paths.timings(STAGE), timings)
        tracker.log_metrics({f"{m}_{s}": v for m in config.MODELS for s, v in result["accuracy"][m].items()})
        tracker.log_metrics({k: v for k, v in result.items() if isinstance(v, (int, float))})
        tracker.log_artifact(paths.plots / "subsets.png")
        tracker.log_artifact(paths.subsets_csv)
    print(f"{STAGE}: " + "; ".join(
        f"{m} " + " ".join(f"{s} {result['accuracy'][m][s]:.3f}" for s in config.SUBSETS) for m in config.MODELS
    ))  # fmt: skip
    return result


def derived(r: dict) -> dict:
    """The issue's target measures from the accuracies and costs."""
    acc, dyn, naive = r["accuracy"], r["cost"]["dynamic"], r["cost"]["naive"]
    worst = {m: min(acc[m][s] for s in config.SINGLE) for m in config.MODELS}
    ratio = {m: round(worst[m] / acc[m]["RGB"], 4) if acc[m]["RGB"] else 0.0 for m in config.MODELS}
    out = {
        "worst_single_accuracy": worst,
        "worst_single_over_rgb": ratio,
        "mean_subset_accuracy": {m: round(statistics.fmean(acc[m].values()), 4) for m in config.MODELS},
        "rgb_gap_dynamic_minus_naive": round(acc["dynamic"]["RGB"] - acc["naive"]["RGB"], 4),
        "dynamic_module_flops_share": round(dyn["first_conv_flops"] / dyn["flops"], 6),
        "dynamic_module_params_share": round(dyn["first_conv_parameters"] / dyn["parameters"], 6),
        "dynamic_extra_flops_vs_naive": round(dyn["flops"] / naive["flops"] - 1, 6),
        "dynamic_extra_params_vs_naive": round(dyn["parameters"] / naive["parameters"] - 1, 6),
        "seven_naive_models_parameters": 7 * naive["parameters"],
        "targets": config.TARGETS,
    }
    t = config.TARGETS
    out["targets_met"] = {
        "worst_single_over_rgb": ratio["dynamic"] >= t["worst_single_over_rgb_min"],
        "rgb_gap": out["rgb_gap_dynamic_minus_naive"] >= -t["rgb_gap_max"],
        "dynamic_flops": out["dynamic_extra_flops_vs_naive"] <= t["dynamic_flops_share_max"],
    }
    return out


def bar_chart(path, r: dict) -> None:
    """Grouped bars: test accuracy per channel subset, one bar per model, the run-to-run std as error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(config.MODELS)
    xs = np.arange(len(config.SUBSETS))
    for i, m in enumerate(config.MODELS):
        heights = [r["accuracy"][m][s] for s in config.SUBSETS]
        errors = [r["spread"][m][s] for s in config.SUBSETS]
        label = f"{m} ({r['channel_sampling'][m]} sampling, {r['runs'][m]} runs)"
        ax.bar(xs + (i - (len(config.MODELS) - 1) / 2) * width, heights, width, yerr=errors, capsize=3, label=label)
    ax.axhline(1 / r["classes"], color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(xs, config.SUBSETS)
    ax.set_ylim(0, 1)
    ax.set_xlabel("channels present at test time")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"dynconv: test accuracy per channel subset ({r['test_images']} images, {r['image_size']} px)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
