"""ddpm-sample: generate `sample.n_images` faces with the chosen sampler, as 64×64 JPEGs `1.jpg … N.jpg`.

Also the course's figure — 5 images through the denoising steps, x_T … x_0 — and
a figure of the forward process on 5 training images. Seeded: the same params
and weights give the same images on CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from stages.common.cli import main
from stages.common.diffusion import Schedule, make_sampler, to_uint8
from stages.common.io import atomic_path, write_json
from stages.common.params import to_dict
from stages.common.plots import image_grid
from stages.common.runtime import setup, write_timings
from stages.common.tracking import tracked_run
from stages.ddpm import config
from stages.ddpm.images import load_prepared, save_jpeg, upscale
from stages.ddpm.model import load_model, sample_images

FIGURE_ROWS = 5  # images in the denoising and forward figures
FIGURE_COLS = 8  # steps shown, x_T … x_0


def run(p: config.DdpmParams, common: config.CommonParams, paths: config.Paths) -> Path:
    device = setup(p.seed, common.device, common.threads, common.kernels)
    s = p.sample
    model, schedule = load_model(paths, device)
    sampler = make_sampler(s.sampler, schedule, s.steps, s.eta)
    shown = [
        sampler.timesteps[round(i * (len(sampler.timesteps) - 1) / (FIGURE_COLS - 2))] for i in range(FIGURE_COLS - 1)
    ]
    start = time.perf_counter()
    images, trajectory = sample_images(model, sampler, s.n_images, s.batch_size, s.seed, device, tuple(shown))
    seconds = time.perf_counter() - start
    with atomic_path(paths.samples) as out:
        out.mkdir()
        for i, image in enumerate(images, start=1):
            save_jpeg(image, out / f"{i}.jpg", s.jpeg_quality)

    rows = min(FIGURE_ROWS, len(trajectory[-1]))
    steps = [*shown, -1]
    frames = {t: upscale(to_uint8(trajectory[t][:rows]).numpy()) for t in steps}
    image_grid(
        paths.plots / "denoising.png", [frames[t][r] for r in range(rows) for t in steps], ncols=len(steps),
        col_titles=[f"t={t + 1}" if t >= 0 else "x_0" for t in steps],
        suptitle=f"ddpm: reverse process ({sampler.name}, {len(sampler.timesteps)} steps), x_T → x_0", scale=1.4,
    )  # fmt: skip
    image_grid(paths.plots / "samples.png", list(images[:64]), ncols=8, suptitle=f"ddpm: {sampler.name} samples")
    forward_figure(paths, schedule, rows, p.seed)

    metrics = {
        "sampler": sampler.name,
        "sampler_steps": len(sampler.timesteps),
        "eta": s.eta if s.sampler == "ddim" else 1.0,
        "n_images": s.n_images,
    }
    write_json(paths.metrics / "ddpm_sample.json", metrics)
    timings = {"sample_seconds": round(seconds, 2), "seconds_per_image": round(seconds / max(1, s.n_images), 4)}
    write_timings(paths.timings("ddpm-sample"), timings)
    with tracked_run(config.TASK, "ddpm-sample", {"sample": to_dict(s)}, common.mlflow, paths.root) as tracker:
        tracker.log_metrics({**metrics, **timings})
        for name in ("denoising.png", "samples.png", "forward.png"):
            tracker.log_artifact(paths.plots / name)
    print(
        f"ddpm-sample: {s.n_images} images with {sampler.name} ({len(sampler.timesteps)} steps), {seconds:.1f} s -> {paths.samples}"
    )
    return paths.samples


def forward_figure(paths: config.Paths, schedule: Schedule, rows: int, seed: int) -> None:
    """q(x_t | x_0): `rows` training images at evenly spaced t, from x_0 to x_T."""
    data = torch.from_numpy(load_prepared(paths.prepared)[:rows])
    ts = [round(i * (schedule.timesteps - 1) / (FIGURE_COLS - 2)) for i in range(FIGURE_COLS - 1)]
    noise = torch.randn(data.shape, generator=torch.Generator().manual_seed(seed))
    columns = [upscale(to_uint8(data).numpy())] + [
        upscale(to_uint8(schedule.q_sample(data, torch.full((len(data),), t), noise)).numpy()) for t in ts
    ]
    image_grid(
        paths.plots / "forward.png", [columns[c][r] for r in range(len(data)) for c in range(len(columns))],
        ncols=len(columns), col_titles=["x_0"] + [f"t={t + 1}" for t in ts],
        suptitle=f"ddpm: forward process ({schedule.kind} β, T={schedule.timesteps})", scale=1.4,
    )  # fmt: skip


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
