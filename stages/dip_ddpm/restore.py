"""dip-ddpm-restore@<method>: denoise the prepared noisy images with one method (the DVC matrix variant).

- `dip`: one DIP network per image fitted for `dip.iterations`, the output kept every
  `dip.record_every` iterations. Stopping rule (no clean test image involved): `validation`
  picks the recorded iteration with the best mean PSNR on the separate validation images
  (fitted in the same batch), `fixed` takes `dip.stop_iteration`. The oracle — each test
  image at its own best recorded iteration — is saved too, labelled as such.
- `ddpm`: y scaled to [-1, 1] has noise std 2σ/255; at the timestep t with
  sqrt((1 − ᾱ_t)/ᾱ_t) = 2σ/255, sqrt(ᾱ_t)·y is distributed as x_t, and the reverse process
  runs from there (`ddpm.steps` DDIM steps, `ddpm.eta`; η = 1 with every step is DDPM's chain).
- `dip-ddpm`: a short DIP fit (`combine.dip_iterations`), brought to the noise level of t0 —
  by default with the observation's own residual, x_dip + β·(y − x_dip), β = s_{t0}/s_y
  (`combine.noise: residual`), or with fresh Gaussian noise (`fresh`, SDEdit) — then
  `combine.steps` DDIM steps to x_0, x̂_0 optionally pulled towards y by `combine.guidance`.
  t0 = 0 returns the DIP estimate; t0 = the σ-matched timestep with `residual` is DDPM alone.

Writes data/dip-ddpm/restored/<method>/ (uint8 images, per σ) and timings/dip-ddpm-restore-<method>.json.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

from stages.common.cli import main
from stages.common.io import write_json
from stages.common.params import ParamsError, to_dict
from stages.common.runtime import setup, thread_count
from stages.common.tracking import tracked_run
from stages.dip_ddpm import config, data, dip, quality, reverse


def check_method(method: str) -> str:
    if method not in config.METHODS:
        raise ParamsError(
            f"unknown dip-ddpm-restore method {method!r} (the matrix variants: {', '.join(config.METHODS)})"
        )
    return method


def noisy_tensor(noisy: np.ndarray) -> torch.Tensor:
    """(M, H, W, 3) on 0–255 -> (M, 3, H, W) on [0, 1] (not clipped: the observation as it is)."""
    return torch.from_numpy(noisy).permute(0, 3, 1, 2).contiguous() / 255.0


def run_dip(p: config.DipDdpmParams, arrays: dict, device: torch.device) -> tuple[dict, dict]:
    """DIP alone on test + validation images, σ by σ; the stopping rule and the oracle."""
    n_test, d = int(arrays["n_test"]), p.dip
    clean = arrays["clean"]
    images, oracle, stops, curves, seconds = [], [], [], [], 0.0
    seeds = dip.image_seeds(p.seed, list(range(len(clean))))
    for s, sigma in enumerate(arrays["sigmas"]):
        result = dip.fit(noisy_tensor(arrays["noisy"][s]), p.net, d.iterations, seeds, d.record_every, device,
                         desc=f"dip σ={sigma:g}")  # fmt: skip
        seconds += result.seconds
        its = sorted(result.snapshots)
        snaps = np.stack([quality.to_uint8(result.snapshots[it].numpy()) for it in its])  # (R, M, H, W, 3)
        psnr = np.array([[quality.psnr(clean[i], snaps[r, i]) for i in range(len(clean))] for r in range(len(its))])
        val_curve = psnr[:, n_test:].mean(1)
        stop = its[int(val_curve.argmax())] if d.stop_rule == "validation" else d.stop_iteration
        stops.append(stop)
        images.append(snaps[its.index(stop), :n_test])
        best = psnr[:, :n_test].argmax(0)  # each test image's own best recorded iteration (oracle)
        oracle.append(np.stack([snaps[best[i], i] for i in range(n_test)]))
        curves.append(psnr)
        print(f"  σ={sigma:g}: stop at {stop} ({d.stop_rule}); test PSNR there {psnr[its.index(stop), :n_test].mean():.2f},"
              f" oracle {psnr[:, :n_test].max(0).mean():.2f} dB")  # fmt: skip
    out = {"images": np.stack(images), "oracle": np.stack(oracle), "stop": np.array(stops),
           "curve_iterations": np.array(its), "curve_psnr": np.stack(curves),
           "flops_per_iteration": np.array(dip.flops_per_iteration(p.net, clean.shape[1]))}  # fmt: skip
    m = len(clean)
    per_iteration = seconds / (len(arrays["sigmas"]) * d.iterations * m)
    timing = {
        "seconds_total": round(seconds, 2),
        "images_fitted": m * len(arrays["sigmas"]),
        "seconds_per_image_full_run": round(seconds / (m * len(arrays["sigmas"])), 4),
        "seconds_per_image_at_stop": {f"{s:g}": round(per_iteration * st, 4) for s, st in zip(arrays["sigmas"], stops, strict=True)},
        "note": f"{m} images (test + validation) fitted in one grouped batch per σ; per image = batch time / {m}",
    }  # fmt: skip
    return out, timing


def unet_flops(model, size: int, device: torch.device | str = "cpu") -> int:
    """FLOPs of one U-Net forward pass for one image (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.cfg.channels, size, size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.zeros(1, dtype=torch.long, device=device))
    return int(counter.get_total_flops())


def start_timestep(sigma: float, schedule) -> int:
    return reverse.timestep_for_noise_std(schedule, 2 * sigma / 255)


def run_ddpm(p: config.DipDdpmParams, arrays: dict, device: torch.device, model, schedule) -> tuple[dict, dict]:
    n_test = int(arrays["n_test"])
    generator = torch.Generator().manual_seed(p.seed)
    images, starts, steps_used, seconds = [], [], [], 0.0
    for s, sigma in enumerate(arrays["sigmas"]):
        t = start_timestep(float(sigma), schedule)
        timesteps = reverse.partial_timesteps(t, min(p.ddpm.steps, t + 1))
        y = 2 * noisy_tensor(arrays["noisy"][s][:n_test]) - 1
        start = time.perf_counter()
        x0 = reverse.reverse_from(model, schedule, float(schedule.sqrt_alphas_cumprod[t]) * y.to(device), timesteps,
                                  generator, p.ddpm.eta)  # fmt: skip
        seconds += time.perf_counter() - start
        images.append(quality.to_uint8(((x0.cpu() + 1) / 2).numpy()))
        starts.append(t + 1)
        steps_used.append(len(timesteps))
        print(f"  σ={sigma:g}: start at t={t + 1} of {schedule.timesteps}, {len(timesteps)} reverse steps")
    out = {"images": np.stack(images), "t_start": np.array(starts), "steps": np.array(steps_used),
           "unet_flops": np.array(unet_flops(model, arrays["clean"].shape[1], device))}  # fmt: skip
    timing = {"seconds_total": round(seconds, 3), "seconds_per_image": round(seconds / (n_test * len(starts)), 4)}
    return out, timing


def combine(
    p: config.DipDdpmParams, x_dip: torch.Tensor, y: torch.Tensor, sigma: float, model, schedule,
    generator: torch.Generator, device: torch.device | str = "cpu",
) -> torch.Tensor:  # fmt: skip
    """DIP estimate x_dip and observation y, both (N, 3, H, W) in [0, 1] -> the restored images in [0, 1].

    In [-1, 1], with s_t = sqrt((1 − ᾱ_t)/ᾱ_t) the noise level of x_t and s_y = 2σ/255 the observation's:
    x_{t0} = sqrt(ᾱ_{t0}) · (x_dip + β·(y − x_dip) + sqrt(s_{t0}² − β²·s_y²)·ε), then DDIM steps to x_0.
    `combine.noise: residual` sets β = min(1, s_{t0}/s_y): the observation's own residual y − x_dip (its noise
    plus the detail DIP has not fitted yet) supplies the noise, so x_dip + β·(y − x_dip) = (1 − β)·x_dip + β·y
    and t0 = the σ-matched timestep is DDPM alone. `fresh`: β = 0, plain forward noising (SDEdit).
    t0 = 0 returns x_dip itself (no noise, no reverse step).
    """
    c = p.combine
    if c.t0 == 0:
        return x_dip
    t = c.t0 - 1  # 0-based index of x_{t0}
    timesteps = reverse.partial_timesteps(t, min(c.steps, c.t0))
    a = float(schedule.alphas_cumprod[t])
    s_t, s_y = math.sqrt((1 - a) / a), 2 * sigma / 255
    beta = min(1.0, s_t / s_y) if c.noise == "residual" else 0.0
    fresh = max(0.0, s_t**2 - (beta * s_y) ** 2) ** 0.5
    x0, obs = 2 * x_dip.to(device) - 1, 2 * y.to(device) - 1
    noise = torch.randn(x0.shape, generator=generator).to(device)
    x_t = math.sqrt(a) * (x0 + beta * (obs - x0) + fresh * noise)
    hook = (lambda x0_hat, _t: x0_hat + c.guidance * (obs - x0_hat)) if c.guidance > 0 else None
    return (reverse.reverse_from(model, schedule, x_t, timesteps, generator, c.eta, hook).cpu() + 1) / 2


def run_combined(p: config.DipDdpmParams, arrays: dict, device: torch.device, model, schedule) -> tuple[dict, dict]:
    n_test = int(arrays["n_test"])
    generator = torch.Generator().manual_seed(p.seed)
    seeds = dip.image_seeds(p.seed, list(range(n_test)))  # the same networks as DIP alone gives these images
    images, dips, steps, dip_seconds, ddpm_seconds = [], [], [], 0.0, 0.0
    for s, sigma in enumerate(arrays["sigmas"]):
        y = noisy_tensor(arrays["noisy"][s][:n_test])
        result = dip.fit(y, p.net, p.combine.dip_iterations, seeds, 0, device, desc=f"dip-ddpm σ={sigma:g}")
        dip_seconds += result.seconds
        start = time.perf_counter()
        x = combine(p, result.final, y, float(sigma), model, schedule, generator, device)
        ddpm_seconds += time.perf_counter() - start
        images.append(quality.to_uint8(x.numpy()))
        dips.append(quality.to_uint8(result.final.numpy()))
        steps.append(
            len(reverse.partial_timesteps(p.combine.t0 - 1, min(p.combine.steps, p.combine.t0))) if p.combine.t0 else 0
        )
    k = n_test * len(arrays["sigmas"])
    out = {"images": np.stack(images), "dip_estimate": np.stack(dips), "steps": np.array(steps),
           "dip_iterations": np.array(p.combine.dip_iterations)}  # fmt: skip
    timing = {
        "seconds_total": round(dip_seconds + ddpm_seconds, 3),
        "seconds_per_image": round((dip_seconds + ddpm_seconds) / k, 4),
        "dip_seconds_per_image": round(dip_seconds / k, 4),
        "reverse_seconds_per_image": round(ddpm_seconds / k, 4),
        "note": f"{n_test} images fitted in one grouped batch per σ; per image = batch time / {n_test}",
    }
    return out, timing


def check_prior(p: config.DipDdpmParams, method: str, arrays: dict, model, schedule) -> None:
    size = arrays["clean"].shape[1]
    if model.cfg.image_size != size:
        raise ParamsError(
            f"parameter 'dip-ddpm.data.image_size' is {size}, but the prior was trained at {model.cfg.image_size}"
        )
    if method == "dip-ddpm" and p.combine.t0 > schedule.timesteps:
        raise ParamsError(
            f"parameter 'dip-ddpm.combine.t0' is {p.combine.t0}, beyond the prior's schedule (T = {schedule.timesteps})"
        )


def run(p: config.DipDdpmParams, common: config.CommonParams, paths: config.Paths, *variant: str) -> dict:
    config.validate(p)
    if len(variant) != 1:
        raise ParamsError(f"dip-ddpm-restore takes one method ({', '.join(config.METHODS)}), got {list(variant)}")
    method = check_method(variant[0])
    arrays = data.load(paths.prepared)
    device = setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels)
    if method == "dip":
        out, timing = run_dip(p, arrays, device)
    else:
        model, schedule = reverse.load_prior(paths.prior, device)
        check_prior(p, method, arrays, model, schedule)
        runner = run_ddpm if method == "ddpm" else run_combined
        out, timing = runner(p, arrays, device, model, schedule)
    data.save_arrays(paths.restored(method), **out)
    write_json(paths.restore_timing(method), {"method": method, "device": str(device), **timing})
    section = {"dip": "dip", "ddpm": "ddpm", "dip-ddpm": "combine"}[method]
    params = {"seed": p.seed, "net": to_dict(p.net), section: to_dict(getattr(p, section))}
    with tracked_run(config.TASK, f"dip-ddpm-restore@{method}", params, common.mlflow, paths.root) as tracker:
        tracker.log_metrics({k: v for k, v in timing.items() if isinstance(v, (int, float))})
    print(
        f"dip-ddpm-restore@{method}: {out['images'].shape[1]} images × {out['images'].shape[0]} σ -> {paths.restored(method)}"
    )
    return {"out": out, "timing": timing}


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths(), *sys.argv[1:]))
