"""dip-ddpm-evaluate: PSNR and SSIM (scikit-image) of every method at every σ, DIP's overfitting curve, costs.

- Per σ and method: mean, std, min and max over the test images; DIP twice: at its
  no-reference stopping rule and at the per-image oracle best (labelled `dip_oracle`).
- The combination against each alone, image by image (the paired difference and how many
  images it wins), which is the run-to-run spread the report states.
- Cost per image, deterministic: DIP iterations, U-Net evaluations and FLOPs (torch's
  FlopCounterMode); wall-clock seconds go to timings/dip-ddpm.json only.
- plots/dip-ddpm/dip_curve.csv (`dvc plots`) and dip_curve.png: test and validation PSNR
  against DIP iterations, the chosen stopping point marked.
"""

from __future__ import annotations

import numpy as np

from stages.common.cli import main
from stages.common.headlines import write_evaluation
from stages.common.io import atomic_path, read_json, write_csv
from stages.common.runtime import write_timings
from stages.common.tracking import tracked_run
from stages.dip_ddpm import config, data, quality

SHOWN = ("noisy", "dip", "dip_oracle", "ddpm", "dip-ddpm")


def summary(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(v.mean()), 3), "std": round(float(v.std()), 3),
            "min": round(float(v.min()), 3), "max": round(float(v.max()), 3)}  # fmt: skip


def score(clean: np.ndarray, images: np.ndarray) -> tuple[list[float], list[float]]:
    return ([quality.psnr(c, x) for c, x in zip(clean, images, strict=True)],
            [quality.ssim(c, x) for c, x in zip(clean, images, strict=True)])  # fmt: skip


def sigma_key(sigma: float) -> str:
    return f"sigma_{sigma:g}"


def run(p: config.DipDdpmParams, common: config.CommonParams, paths: config.Paths) -> dict:
    config.validate(p)
    arrays = data.load(paths.prepared)
    n_test, sigmas = int(arrays["n_test"]), [float(s) for s in arrays["sigmas"]]
    clean = arrays["clean"][:n_test]
    restored = {m: data.load_arrays(paths.restored(m), f"dip-ddpm-restore@{m}") for m in config.METHODS}
    noisy = np.clip(arrays["noisy"][:, :n_test], 0, 255).round().astype(np.uint8)

    metrics: dict = {"library": quality.LIBRARY, "test_images": n_test, "sigmas": sigmas, "data_source": p.data.source}
    for s, sigma in enumerate(sigmas):
        candidates = {"noisy": noisy[s], "dip": restored["dip"]["images"][s], "dip_oracle": restored["dip"]["oracle"][s],
                      "ddpm": restored["ddpm"]["images"][s], "dip-ddpm": restored["dip-ddpm"]["images"][s],
                      "dip-ddpm_dip_estimate": restored["dip-ddpm"]["dip_estimate"][s]}  # fmt: skip
        scores = {name: score(clean, images) for name, images in candidates.items()}
        entry = {name: {"psnr": summary(ps), "ssim": summary(ss)} for name, (ps, ss) in scores.items()}
        entry["dip"]["stop_iteration"] = int(restored["dip"]["stop"][s])
        entry["ddpm"]["t_start"] = int(restored["ddpm"]["t_start"][s])
        entry["ddpm"]["reverse_steps"] = int(restored["ddpm"]["steps"][s])
        combo = np.asarray(scores["dip-ddpm"][0])
        for other in ("dip", "ddpm"):
            diff = combo - np.asarray(scores[other][0])
            entry[f"dip-ddpm_minus_{other}_psnr"] = {**summary(list(diff)), "wins": int((diff > 0).sum())}
        metrics[sigma_key(sigma)] = entry

    flops = {k: int(restored[m][k]) for m, k in (("dip", "flops_per_iteration"), ("ddpm", "unet_flops"))}
    cost, dip_its = {}, int(restored["dip-ddpm"]["dip_iterations"])
    for s, sigma in enumerate(sigmas):
        stop, steps = int(restored["dip"]["stop"][s]), int(restored["ddpm"]["steps"][s])
        c_steps = int(restored["dip-ddpm"]["steps"][s])
        cost[sigma_key(sigma)] = {
            "dip": {"dip_iterations": stop, "unet_evaluations": 0, "gflops": round(stop * flops["flops_per_iteration"] / 1e9, 3)},
            "ddpm": {"dip_iterations": 0, "unet_evaluations": steps, "gflops": round(steps * flops["unet_flops"] / 1e9, 3)},
            "dip-ddpm": {"dip_iterations": dip_its, "unet_evaluations": c_steps,
                         "gflops": round((dip_its * flops["flops_per_iteration"] + c_steps * flops["unet_flops"]) / 1e9, 3)},
        }  # fmt: skip
    metrics["cost_per_image"] = cost
    metrics["flops"] = flops
    ref = sigma_key(25.0) if 25.0 in sigmas else sigma_key(sigmas[0])
    metrics["reference_sigma"] = ref
    m = metrics[ref]
    metrics["combination_beats_dip_psnr"] = m["dip-ddpm"]["psnr"]["mean"] > m["dip"]["psnr"]["mean"]
    metrics["combination_beats_ddpm_psnr"] = m["dip-ddpm"]["psnr"]["mean"] > m["ddpm"]["psnr"]["mean"]
    metrics["combination_cheaper_than_dip"] = cost[ref]["dip-ddpm"]["gflops"] < cost[ref]["dip"]["gflops"]

    curve_rows = dip_curve(paths, restored["dip"], sigmas, n_test)
    timings = {m: read_json(paths.restore_timing(m)) for m in config.METHODS}
    write_timings(paths.timings, timings)
    write_evaluation(config.TASK, metrics, paths.root, paths.metrics)
    with tracked_run(config.TASK, "dip-ddpm-evaluate", {"seed": p.seed}, common.mlflow, paths.root,
                     background=True) as tracker:  # fmt: skip
        for sigma in sigmas:
            for name in SHOWN:
                tracker.log_metrics({f"{name}_psnr_s{sigma:g}": metrics[sigma_key(sigma)][name]["psnr"]["mean"],
                                     f"{name}_ssim_s{sigma:g}": metrics[sigma_key(sigma)][name]["ssim"]["mean"]})  # fmt: skip
        tracker.log_artifact(paths.plots / "dip_curve.png")
        tracker.log_artifact(paths.plots / "dip_curve.csv")
    for sigma in sigmas:
        e = metrics[sigma_key(sigma)]
        print(
            f"  σ={sigma:g}: "
            + ", ".join(f"{n} {e[n]['psnr']['mean']:.2f} dB / {e[n]['ssim']['mean']:.3f}" for n in SHOWN)
        )
    print(f"dip-ddpm-evaluate: {len(curve_rows)} curve points -> {paths.metrics}")
    return metrics


def dip_curve(paths: config.Paths, dip: dict, sigmas: list[float], n_test: int) -> list[dict]:
    """Mean test and validation PSNR against DIP iterations per σ: CSV for `dvc plots` and a PNG with the stop."""
    its, psnr = dip["curve_iterations"], dip["curve_psnr"]  # psnr: (S, R, M)
    rows = []
    for r, it in enumerate(its):
        row = {"iteration": int(it)}
        for s, sigma in enumerate(sigmas):
            row[f"test_psnr_s{sigma:g}"] = round(float(psnr[s, r, :n_test].mean()), 3)
            row[f"val_psnr_s{sigma:g}"] = round(float(psnr[s, r, n_test:].mean()), 3)
        rows.append(row)
    write_csv(paths.plots / "dip_curve.csv", rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s, sigma in enumerate(sigmas):
        (line,) = ax.plot(its, psnr[s, :, :n_test].mean(1), label=f"σ={sigma:g} test")
        ax.plot(its, psnr[s, :, n_test:].mean(1), ls=":", color=line.get_color(), label=f"σ={sigma:g} validation")
        stop = int(dip["stop"][s])
        y = float(psnr[s, list(its).index(stop), :n_test].mean())
        ax.plot([stop], [y], marker="o", ms=8, mfc="none", color=line.get_color())
        ax.axvline(stop, ls="--", lw=0.8, color=line.get_color())
    ax.set_xlabel("DIP iteration")
    ax.set_ylabel("PSNR (dB) against the clean image")
    ax.set_title("DIP's overfitting curve; circles: the no-reference stop (best validation PSNR)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(paths.plots / "dip_curve.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
