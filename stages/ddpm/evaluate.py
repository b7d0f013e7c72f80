"""ddpm-evaluate: FID of the generated images against the training images, and DDPM vs DDIM.

- FID: the N JPEGs of ddpm-sample (what is submitted) against the reference
  features of ddpm-fid-reference; the extractor and both counts are recorded.
  With a few dozen images FID is a small-sample estimate (biased upwards): compare
  runs at equal counts only.
- Samplers: each entry of `evaluate.compare` ("ddpm" = all T steps, "ddim:<k>")
  generates `compare_images` images from one seed: seconds per image and FID.
- FID during training: each EMA snapshot of ddpm-train (models/ddpm/snapshots.pt)
  generates `curve_images` images with `curve_sampler` from one seed; FID against
  the training step in plots/ddpm/fid_curve.csv and .png (the wall-clock second of each
  step is a timing: timings/ddpm-train.json, `snapshot_seconds`).
"""

from __future__ import annotations

import time

import numpy as np

from stages.common import checkpoint, fid
from stages.common.cli import main
from stages.common.diffusion import make_sampler
from stages.common.io import DataError, write_csv, write_json
from stages.common.params import ParamsError, to_dict
from stages.common.plots import line_plot
from stages.common.runtime import setup, write_timings
from stages.common.tracking import tracked_run
from stages.ddpm import config
from stages.ddpm.images import decode
from stages.ddpm.model import load_model, sample_images


def read_samples(paths: config.Paths) -> np.ndarray:
    files = sorted(paths.samples.glob("*.jpg"), key=lambda f: int(f.stem))
    if not files:
        raise DataError(f"{paths.samples}: no generated images; run ddpm-sample")
    return np.stack([decode(f) for f in files])


def parse_compare(entry: str) -> tuple[str, int]:
    name, _, steps = entry.partition(":")
    if name == "ddpm" and not steps:
        return "ddpm", 0
    if name == "ddim" and steps.isdigit() and int(steps) > 0:
        return "ddim", int(steps)
    raise ParamsError(f"ddpm.evaluate.compare entry {entry!r}: expected 'ddpm' or 'ddim:<steps>'")


def run(p: config.DdpmParams, common: config.CommonParams, paths: config.Paths) -> dict:
    device = setup(p.seed, common.device, common.threads, common.kernels)
    e = p.evaluate
    compare = [parse_compare(entry) for entry in e.compare]  # bad entries fail before any work
    extractor = fid.load_extractor(str(device), e.fid_extractor)
    real_features, info = fid.load_reference(paths.fid_reference, extractor[1], "ddpm-fid-reference")

    def score(images: np.ndarray) -> fid.FidResult:
        fake = fid.inception_features(images, extractor, device=str(device))
        return fid.FidResult(fid.frechet_distance(real_features, fake), extractor[1], len(real_features), len(images))

    result = score(read_samples(paths))
    rows, timings = [], {}
    if e.compare_images > 0:
        model, schedule = load_model(paths, device)
        for entry, (name, steps) in zip(e.compare, compare, strict=True):
            sampler = make_sampler(name, schedule, steps)
            start = time.perf_counter()
            images, _ = sample_images(model, sampler, e.compare_images, e.compare_images, e.seed, device)
            seconds = time.perf_counter() - start
            rows.append({
                "sampler": entry, "steps": len(sampler.timesteps), "images": e.compare_images,
                "fid": round(score(images).fid, 2),
            })  # fmt: skip
            timings[f"{entry.replace(':', '')}_seconds_per_image"] = round(seconds / e.compare_images, 4)
            print(
                f"  {entry}: {seconds / e.compare_images:.4f} s/image, FID {rows[-1]['fid']} ({e.compare_images} images)"
            )
    write_csv(paths.plots / "samplers.csv", rows, ["sampler", "steps", "images", "fid"])
    curve = fid_curve(p, paths, device, score)
    write_csv(paths.plots / "fid_curve.csv", curve, ["step", "images", "fid"])
    line_plot(paths.plots / "fid_curve.png", curve, "step", ["fid"],
              f"ddpm: FID during training ({e.curve_images} images, {e.curve_sampler})", "FID")  # fmt: skip

    metrics = {**result.as_dict(), "fid_protocol": f"{info['images']} vs generated JPEGs at 64×64"}
    for row in rows:
        key = row["sampler"].replace(":", "")
        metrics[f"{key}_fid"] = row["fid"]
    if rows:
        metrics["compare_images"] = e.compare_images
    if curve:
        metrics["curve_images"] = e.curve_images
    write_json(paths.metrics / "ddpm.json", metrics)
    write_timings(paths.timings("ddpm-evaluate"), timings)
    with tracked_run(config.TASK, "ddpm-evaluate", {"evaluate": to_dict(e)}, common.mlflow, paths.root) as tracker:
        tracker.log_metrics({**metrics, **timings})
        tracker.set_tags({"fid_extractor": extractor[1]})
        tracker.log_artifact(paths.plots / "fid_curve.png")
    print(f"ddpm-evaluate: FID {result.fid:.2f} ({result.n_fake} generated vs {result.n_real} real, {extractor[1]})")
    return metrics


def fid_curve(p: config.DdpmParams, paths: config.Paths, device, score) -> list[dict]:
    """FID of each EMA snapshot of training, all sampled from the same seed with the same sampler."""
    e = p.evaluate
    if e.curve_images == 0:
        return []
    saved = checkpoint.load(paths.snapshots, made_by="ddpm-train")
    model, schedule = load_model(paths, device)
    name, steps = parse_compare(e.curve_sampler)
    sampler = make_sampler(name, schedule, steps)
    rows = []
    for step, ema in zip(saved["steps"], saved["ema"], strict=True):
        model.load_state_dict(ema)
        images, _ = sample_images(model, sampler, e.curve_images, e.curve_images, e.seed, device)
        rows.append({"step": step, "images": e.curve_images, "fid": round(score(images).fid, 2)})
        print(f"  step {step}: FID {rows[-1]['fid']} ({e.curve_images} images)")
    return rows


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
