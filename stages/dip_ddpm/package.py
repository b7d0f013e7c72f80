"""dip-ddpm-package: reports/dip-ddpm.md from the measured metrics, and the qualitative grid.

The grid (plots/dip-ddpm/grid.png): per σ, the first test images as clean | noisy | DIP
(no-reference stop) | DIP (oracle) | DDPM | DIP+DDPM. The ablation table comes from
reports/dip-ddpm-ablations.json, written by `python -m stages.dip_ddpm.ablate` from
`dvc exp show` (committed; the report says when it is missing).
"""

from __future__ import annotations

import json

import numpy as np

from stages.common.cli import main
from stages.common.headlines import detail_path, spread_section
from stages.common.io import read_json, write_text
from stages.common.plots import image_grid
from stages.dip_ddpm import config, data

GRID_IMAGES = 3  # test images per σ in the grid
ABLATIONS = "dip-ddpm-ablations.json"
COLUMNS = ("clean", "noisy", "DIP", "DIP (oracle)", "DDPM", "DIP+DDPM")

THEORY = """\
## Why the combination should work (and where it cannot)

**Two priors with different errors.** Deep Image Prior (Ulyanov et al. 2018) uses no training
data: a convolutional encoder–decoder fitted to the noisy image by gradient descent reproduces
smooth, low-frequency content long before it reproduces noise, so its output passes through a
good estimate and then overfits (the curve below). Stopped without a reference, its error is
mostly *missing detail* (bias towards smoothness), and it costs hundreds of forward–backward
passes per image. A DDPM trained on clean images of the same kind knows the detail — it
approximates the score of the data distribution at every noise level — and denoising with it
is principled: y = x + n scaled by sqrt(ᾱ_t) *is* a sample of x_t at the t where
sqrt((1 − ᾱ_t)/ᾱ_t) = 2σ/255, so the reverse process from t estimates x. Its error is of a different
kind: at large σ it must invent everything the noise hides, and it can only be as good as the
prior (a small model trained briefly hallucinates or shifts colours), with one U-Net evaluation
per reverse step.

**The combination.** A *short* DIP fit gives x_dip (cheap: it stops before the curve peaks).
It is brought to the noise level s_{t0} = sqrt((1 − ᾱ_{t0})/ᾱ_{t0}) of a start timestep t0 below the
σ-matched one and a few DDIM steps run from there. The noise is taken from the observation's own
residual: x_{t0} = sqrt(ᾱ_{t0})·(x_dip + β·(y − x_dip)), β = s_{t0}/s_y, s_y = 2σ/255. The residual
y − x_dip is the noise n plus the detail DIP has not fitted yet; its noise part has std β·s_y = s_{t0},
so the input has exactly the noise level the U-Net expects at t0 (Gaussian, independent of x), and
its signal part x_dip + β·(x − x_dip) keeps a fraction β of the missing detail instead of throwing
it away as fresh noise would (SDEdit, Meng et al. 2022: `combine.noise: fresh`, an ablation). The
two methods are the ends of this path: t0 = 0 is DIP (returned exactly), t0 = the σ-matched
timestep is DDPM alone. In between, the DDPM removes a *smaller* noise level (shorter chain, less
to invent, so fewer hallucinations) from an input whose signal DIP has already brought close to
x, and DIP's smoothness bias is corrected by the prior's detail. When the two errors are not
perfectly correlated an interior t0 beats both ends; and the cost is a short DIP fit plus a few
U-Net evaluations, below DIP run to its stopping point.

**Where it cannot help.** (i) If DIP's estimate is poor (too few iterations, large σ), the
fraction 1 − β of its error stays in the input, and a small t0 cannot remove it. (ii) If t0 is too
large the combination degrades to DDPM alone, with its hallucinations. (iii) It inherits the
prior's limits: on images unlike the prior's training data the reverse steps add the prior's own
errors. (iv) PSNR rewards the posterior *mean*; a reverse process with η > 0 draws a posterior
*sample* (sharper, but with about twice the MSE of the mean in theory), so η = 0 (DDIM, close to the
mean) is used for the tables. (v) A DIP stop chosen on a few validation images is itself noisy.
"""


def fmt(entry: dict, key: str = "psnr", digits: int = 2) -> str:
    v = entry[key]
    return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}"


def grid(paths: config.Paths, arrays: dict, restored: dict) -> None:
    n_test, sigmas = int(arrays["n_test"]), [float(s) for s in arrays["sigmas"]]
    rows = min(GRID_IMAGES, n_test)
    noisy = np.clip(arrays["noisy"], 0, 255).round().astype(np.uint8)
    images, titles = [], []
    for s, sigma in enumerate(sigmas):
        for i in range(rows):
            row = [arrays["clean"][i], noisy[s, i], restored["dip"]["images"][s, i], restored["dip"]["oracle"][s, i],
                   restored["ddpm"]["images"][s, i], restored["dip-ddpm"]["images"][s, i]]  # fmt: skip
            images += row
            titles += [f"{c}{f' σ={sigma:g}' if c == 'noisy' else ''}" for c in COLUMNS]
    image_grid(paths.plots / "grid.png", images, ncols=len(COLUMNS), titles=titles, scale=1.5,
               suptitle="dip-ddpm: clean | noisy | DIP | DIP oracle | DDPM | DIP+DDPM")  # fmt: skip


def ablation_lines(paths: config.Paths) -> list[str]:
    file = paths.root / "reports" / ABLATIONS
    ab = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    if not ab.get("rows"):
        return ["Not run yet: `python -m stages.dip_ddpm.ablate` runs them as `dvc exp run` experiments.", ""]
    lines = [f"Each row is one `dvc exp run -S …` on top of the defaults, named in the row where it was recorded"
             " (`reports/dip-ddpm-ablations.json` keeps its commit: `git show <commit>:dvc.lock` says what made it)"
             f" (σ = {ab['sigma']:g}; PSNR/SSIM means over "
             f"the {ab['test_images']} test images; command: `{ab['command']}`).", "",
             "| experiment | changed | DIP | DDPM | DIP+DDPM | DIP+DDPM SSIM | DIP+DDPM GFLOPs/image |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in ab["rows"]:
        name = f"{row['name']} (`{row['experiment']}`)" if row.get("experiment") else row["name"]
        lines.append(f"| {name} | `{row['changed']}` | {row['dip']:.2f} | {row['ddpm']:.2f} | "
                     f"{row['dip-ddpm']:.2f} | {row['dip-ddpm_ssim']:.3f} | {row['gflops']:.2f} |")  # fmt: skip
    lines += [""] + [f"- {note}" for note in ab.get("notes", [])] + [""]
    return lines


def run(p: config.DipDdpmParams, common: config.CommonParams, paths: config.Paths) -> str:
    config.validate(p)
    m = read_json(detail_path(paths.root, config.TASK))
    arrays = data.load(paths.prepared)
    restored = {k: data.load_arrays(paths.restored(k), f"dip-ddpm-restore@{k}") for k in config.METHODS}
    grid(paths, arrays, restored)
    sigmas, n = m["sigmas"], m["test_images"]
    ref = m["reference_sigma"]
    net, dip, c, dd = p.net, p.dip, p.combine, p.ddpm
    lines = [
        "# dip-ddpm: Deep Image Prior and a DDPM, combined, against each alone",
        "",
        "Generated by `dip-ddpm-package` from `reports/dip-ddpm_detail.json` (the whole evaluation; `metrics/dip-ddpm.json` is its headline view); do not edit. Wall-clock times per image:",
        "`timings/dip-ddpm.json` (not in this report: they depend on the machine and its load).",
        "",
        THEORY,
        "## Method",
        "",
        f"- **Data** (`{p.data.source}`): {n} test images and {p.data.val_images} separate validation images at "
        f"{p.data.image_size}×{p.data.image_size}; y = x + σ·ε on the 0–255 scale (not clipped), one fixed draw "
        f"per (image, σ) stored by dip-ddpm-prepare, σ ∈ {{{', '.join(f'{s:g}' for s in sigmas)}}}. "
        + (
            "The faces are drawn with a seed the ddpm task never uses, so none is in the prior's training set."
            if p.data.source == "sample"
            else "Test images come from a split the prior was not trained on."
        ),
        f"- **Prior**: the ddpm task's U-Net (`{config.PRIOR.as_posix()}`, EMA weights), used as trained.",
        f"- **DIP**: one independent `{net.arch}` encoder–decoder per image (channels {net.channels}, skip "
        f"{net.skip_channels}, input z ~ U(0, 0.1) with {net.input_channels} channels, perturbed by "
        f"N(0, {net.input_noise}²) each iteration, {net.upsample} upsampling, sigmoid output), Adam lr {net.lr:g}, "
        f"MSE to y; {dip.iterations} iterations, output recorded every {dip.record_every}. All images of one σ are "
        "fitted together as the groups of grouped convolutions: separate weights, BatchNorm statistics and Adam "
        "state per image, each image's init from its own seed.",
        f"- **DIP stopping rule** (no clean test image): `{dip.stop_rule}` — "
        + (
            "the recorded iteration with the best mean PSNR on the validation images (fitted alongside, never "
            "the test images)."
            if dip.stop_rule == "validation"
            else f"iteration {dip.stop_iteration}."
        )
        + " **DIP (oracle)** is each test image at its own best recorded iteration: it needs the clean image, "
        "so it is an upper bound, not a method.",
        f"- **DDPM alone**: sqrt(ᾱ_t)·y as x_t at the matched t, then {'every timestep' if dd.steps == 0 else f'{dd.steps} DDIM steps'} "
        f"to x_0 (η = {dd.eta:g}).",
        f"- **DIP+DDPM**: DIP for {c.dip_iterations} iterations, brought to t0 = {c.t0} with "
        + ("the observation's residual (β = s_t0/s_y)" if c.noise == "residual" else "fresh Gaussian noise")
        + f", then {c.steps} DDIM steps (at most t0; η = {c.eta:g}), pull of x̂_0 towards y g = {c.guidance:g}.",
        f"- **Quality**: {m['library']}, on uint8 images against the clean uint8 image; ± is the standard deviation "
        "over the test images.",
        "",
        "## Results",
        "",
        "| σ | noisy | DIP (no-reference stop) | DIP (oracle) | DDPM | DIP+DDPM |",
        "|---|---|---|---|---|---|",
    ]
    for s in sigmas:
        e = m[f"sigma_{s:g}"]
        lines.append(f"| {s:g} (PSNR dB) | {fmt(e['noisy'])} | {fmt(e['dip'])} (it. {e['dip']['stop_iteration']}) | "
                     f"{fmt(e['dip_oracle'])} | {fmt(e['ddpm'])} (t = {e['ddpm']['t_start']}) | **{fmt(e['dip-ddpm'])}** |")  # fmt: skip
        lines.append(f"| {s:g} (SSIM) | {fmt(e['noisy'], 'ssim', 3)} | {fmt(e['dip'], 'ssim', 3)} | "
                     f"{fmt(e['dip_oracle'], 'ssim', 3)} | {fmt(e['ddpm'], 'ssim', 3)} | {fmt(e['dip-ddpm'], 'ssim', 3)} |")  # fmt: skip
    lines += ["", "Paired, image by image (PSNR of DIP+DDPM minus the other method, mean ± std over the test images, "
              "and how many of them the combination wins):", "",
              "| σ | − DIP | wins | − DDPM | wins | DIP estimate inside DIP+DDPM (t0 = 0) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for s in sigmas:
        e = m[f"sigma_{s:g}"]
        a, b = e["dip-ddpm_minus_dip_psnr"], e["dip-ddpm_minus_ddpm_psnr"]
        lines.append(f"| {s:g} | {a['mean']:+.2f} ± {a['std']:.2f} | {a['wins']}/{n} | {b['mean']:+.2f} ± {b['std']:.2f} | "
                     f"{b['wins']}/{n} | {fmt(e['dip-ddpm_dip_estimate'])} dB |")  # fmt: skip
    lines += ["", "Cost per image (deterministic; FLOPs from torch's FlopCounterMode: one DIP iteration = forward + "
              f"backward = {m['flops']['flops_per_iteration'] / 1e6:.1f} MFLOPs, one U-Net evaluation = "
              f"{m['flops']['unet_flops'] / 1e6:.1f} MFLOPs):", "",
              "| σ | DIP: iterations / GFLOPs | DDPM: U-Net evals / GFLOPs | DIP+DDPM: iterations + evals / GFLOPs |",
              "|---|---|---|---|"]  # fmt: skip
    for s in sigmas:
        k = m["cost_per_image"][f"sigma_{s:g}"]
        lines.append(f"| {s:g} | {k['dip']['dip_iterations']} / {k['dip']['gflops']:.2f} | "
                     f"{k['ddpm']['unet_evaluations']} / {k['ddpm']['gflops']:.2f} | "
                     f"{k['dip-ddpm']['dip_iterations']} + {k['dip-ddpm']['unet_evaluations']} / {k['dip-ddpm']['gflops']:.2f} |")  # fmt: skip
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    lines += ["", f"At the reference σ ({ref.removeprefix('sigma_')}): the combination beats DIP (no-reference stop) on PSNR: "
              f"{yes(m['combination_beats_dip_psnr'])}; beats DDPM alone: {yes(m['combination_beats_ddpm_psnr'])}; "
              f"costs fewer FLOPs per image than DIP alone: {yes(m['combination_cheaper_than_dip'])}.", "",
              "![grid](../plots/dip-ddpm/grid.png)", "",
              "![DIP PSNR against iterations](../plots/dip-ddpm/dip_curve.png)", "",
              "## Ablations", ""]  # fmt: skip
    lines += ablation_lines(paths)
    lines += [
        "## Limitations",
        "",
        f"- {n} test images: the ± and the paired wins are the spread over images; seeds were not varied in this "
        "table (see the ablations for a seed change).",
        "- The prior is the ddpm task's small sample-scale U-Net; a stronger prior shifts the balance towards DDPM "
        "alone at low σ and towards larger t0.",
        "- DIP runs far fewer iterations than Ulyanov's 1,800 (32×32 images fit faster) and on faces drawn by a "
        "program, so the published 29.2 dB (σ = 25, colour images) is not comparable; CIFAR-10 numbers are in "
        "stages/dip_ddpm/README.md.",
        "- The DIP stopping iteration comes from a few validation images, so it is itself noisy.",
        "",
    ]
    text = "\n".join(lines).rstrip("\n") + "\n" + spread_section(config.TASK, paths.root)
    write_text(paths.report, text)
    print(f"dip-ddpm-package: report -> {paths.report}, grid -> {paths.plots / 'grid.png'}")
    return text


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
