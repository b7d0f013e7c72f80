"""dip-ddpm: every stage as a function on tiny params with a tiny random prior; the σ ↔ t mapping; PSNR/SSIM;
the combination at t0 = 0; bad params each give one `error:` line."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import COMMON, tiny_task

from stages.common.diffusion import Schedule, UNet, UNetConfig
from stages.common.headlines import detail_path, metrics_view
from stages.common.io import DataError, read_json
from stages.common.params import ParamsError
from stages.dip_ddpm import config, data, dip, evaluate, package, prepare, quality, restore, reverse

ROOT = Path(__file__).resolve().parents[2]
TINY_UNET = UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2), attention_resolutions=(8,))


def tiny_params() -> tuple[config.DipDdpmParams, config.CommonParams]:
    """tests/tiny_params.yaml's dip-ddpm section on the real defaults, and CPU / one thread / no MLflow."""
    return config.validate(tiny_task(config.TASK, config.DipDdpmParams)), COMMON


def write_prior(paths: config.Paths, timesteps: int = 50) -> None:
    """A random tiny U-Net saved the way ddpm-train saves its EMA weights."""
    torch.manual_seed(0)
    model = UNet(TINY_UNET)
    paths.prior.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": dataclasses.asdict(TINY_UNET), "diffusion": {"schedule": "linear", "timesteps": timesteps},
                "ema": model.state_dict()}, paths.prior)  # fmt: skip


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    p, common = tiny_params()
    paths = config.Paths(tmp_path_factory.mktemp("dipddpm"))
    write_prior(paths)
    results = {"prepare": prepare.run(p, common, paths)}
    for method in config.METHODS:
        results[method] = restore.run(p, common, paths, method)
    results["evaluate"] = evaluate.run(p, common, paths)
    results["report"] = package.run(p, common, paths)
    return p, common, paths, results


def test_prepare_fixed_noise_per_image_and_sigma(done):
    p, _, paths, _ = done
    a = data.load(paths.prepared)
    assert a["clean"].shape == (5, 16, 16, 3) and a["clean"].dtype == np.uint8
    assert a["noisy"].shape == (3, 5, 16, 16, 3) and int(a["n_test"]) == 3
    for s, sigma in enumerate(p.noise.sigmas):
        residual = a["noisy"][s] - a["clean"].astype(np.float32)
        assert abs(residual.std() - sigma) < 0.1 * sigma
        np.testing.assert_allclose(residual[1], sigma * data.noise_draw(p.noise.seed, 1, sigma, (16, 16, 3)), atol=1e-4)
    # the same draw whatever the other images are: image 0's noise depends on its index and σ only
    assert not np.array_equal(data.noise_draw(0, 0, 25, (4,)), data.noise_draw(0, 1, 25, (4,)))


def test_test_faces_are_not_the_priors_training_faces():
    from stages.ddpm import faces

    train = faces.generate(50, 0)  # the ddpm task's sample source
    test = faces.generate(4, config.DataParams().sample_seed)
    assert not any(np.array_equal(t, x) for t in test for x in train)


CELEBA = ROOT.parent / "shared" / "data" / "celeba_10k" / "img_align_celeba"


@pytest.mark.skipif(not CELEBA.is_dir(), reason="needs ../shared/data/celeba_10k")
def test_real_faces_after_skip_are_held_out_and_cut_as_the_prior_saw_them(tmp_path):
    """A prior trained on the first ddpm.prepare.max_images faces by name never sees dip-ddpm's images when
    data.skip is that count; aligned CelebA faces are cut to the same centre crop as ddpm-prepare's."""
    from stages.ddpm.images import celeba_crop, decode, list_files, read_folder, square

    folder = tmp_path / "faces"
    folder.mkdir()
    for f in sorted(CELEBA.iterdir())[:12]:
        (folder / f.name).write_bytes(f.read_bytes())
    p, _ = tiny_params()
    p = dataclasses.replace(p, data=dataclasses.replace(p.data, source=f"dir:{folder}", skip=6, n_images=3,
                                                        val_images=2, image_size=16))  # fmt: skip
    clean = prepare.clean_images(p)
    files = list_files(folder)
    seen = read_folder(folder, 16, True, 6, 140)  # what ddpm-prepare gives a prior with max_images 6
    assert not any(np.array_equal(c, s) for c in clean for s in seen)
    assert np.array_equal(clean[0], square(celeba_crop(decode(files[6]), 140), 16))  # the first after the skip
    p = dataclasses.replace(p, data=dataclasses.replace(p.data, skip=9))
    with pytest.raises(DataError, match="3 images after the first 9, need 3 test"):
        prepare.clean_images(p)


def test_sigma_to_timestep_matches_the_noise_level_numerically():
    s = Schedule("linear", 200)
    a = s.alphas_cumprod.double()
    ratio = ((1 - a) / a).sqrt()
    for sigma in (15, 25, 50):
        std = 2 * sigma / 255
        t = reverse.timestep_for_noise_std(s, std)
        assert 0 < t < 199 and ratio[t - 1] < ratio[t] < ratio[t + 1]
        assert abs(ratio[t].log() - np.log(std)) <= min(
            abs(ratio[t - 1].log() - np.log(std)), abs(ratio[t + 1].log() - np.log(std))
        )
        # y = x0 + std·ε scaled by sqrt(ᾱ_t) has the noise of x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε
        g = torch.Generator().manual_seed(0)
        x0 = torch.rand(64, 3, 16, 16, generator=g) * 2 - 1
        y = x0 + std * torch.randn(x0.shape, generator=g)
        x_t = a[t].sqrt().float() * y
        measured = (x_t - a[t].sqrt().float() * x0).std().item()
        assert abs(measured - (1 - a[t]).sqrt().item()) / (1 - a[t]).sqrt().item() < 0.06
    with pytest.raises(ValueError, match="noise std"):
        reverse.timestep_for_noise_std(s, 0.0)


def test_partial_timesteps():
    assert reverse.partial_timesteps(5) == [5, 4, 3, 2, 1, 0]
    assert reverse.partial_timesteps(11, 3) == [11, 6, 0] and reverse.partial_timesteps(7, 1) == [7]
    assert reverse.partial_timesteps(0) == [0]
    with pytest.raises(ValueError):
        reverse.partial_timesteps(3, 5)


def test_reverse_from_with_every_step_and_eta_one_is_the_ddpm_chain():
    from stages.common.diffusion import DDPMSampler

    torch.manual_seed(0)
    model = UNet(TINY_UNET).eval()
    s = Schedule("linear", 20)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = reverse.reverse_from(model, s, x, reverse.partial_timesteps(6), torch.Generator().manual_seed(2), eta=1.0)
    sampler, g, ref = DDPMSampler(s), torch.Generator().manual_seed(2), x.clone()
    with torch.no_grad():
        for t in range(6, -1, -1):
            ref = sampler.step(model(ref, torch.full((2,), t)), t, ref, g)
    torch.testing.assert_close(ours, ref.clamp(-1, 1), atol=1e-4, rtol=1e-4)


def test_psnr_and_ssim_against_known_values():
    clean = np.full((8, 8, 3), 100, np.uint8)
    off = clean + np.uint8(10)  # MSE 100 -> PSNR = 10·log10(255²/100) = 28.13 dB
    assert quality.psnr(clean, off) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-9)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert quality.ssim(image, image) == pytest.approx(1.0)
    assert quality.ssim(image, 255 - image) < 0


def test_dip_nets_are_independent_per_image():
    p, _ = tiny_params()
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 3, 16, 16, generator=g)
    both = dip.fit(y, p.net, 4, dip.image_seeds(0, [0, 1, 2]))
    alone = dip.fit(y[1:2], p.net, 4, dip.image_seeds(0, [1]))
    torch.testing.assert_close(both.final[1:2], alone.final, atol=1e-5, rtol=1e-4)
    assert both.final.shape == (3, 3, 16, 16) and 0 <= both.final.min() and both.final.max() <= 1


def test_combination_with_t0_zero_returns_the_dip_estimate():
    p, _ = tiny_params()
    p.combine = dataclasses.replace(p.combine, t0=0)
    torch.manual_seed(0)
    model, s = UNet(TINY_UNET).eval(), Schedule("linear", 50)
    x_dip = torch.rand(2, 3, 16, 16)
    y = torch.rand(2, 3, 16, 16)
    for noise in ("residual", "fresh"):
        p.combine = dataclasses.replace(p.combine, t0=0, noise=noise)
        assert torch.equal(restore.combine(p, x_dip, y, 25.0, model, s, torch.Generator().manual_seed(0)), x_dip)
        p.combine = dataclasses.replace(p.combine, t0=3)
        assert not torch.equal(restore.combine(p, x_dip, y, 25.0, model, s, torch.Generator().manual_seed(0)), x_dip)


def test_combination_at_the_sigma_timestep_with_residual_noise_is_ddpm_alone():
    """β = 1 at t0 = the σ-matched timestep: the start is sqrt(ᾱ)·y, exactly DDPM alone's."""
    p, _ = tiny_params()
    torch.manual_seed(0)
    model, s = UNet(TINY_UNET).eval(), Schedule("linear", 50)
    sigma = 25.0
    t = restore.start_timestep(sigma, s)
    s_t = float(((1 - s.alphas_cumprod[t]) / s.alphas_cumprod[t]).sqrt())
    y = torch.rand(2, 3, 16, 16)
    sigma_exact = s_t * 255 / 2  # the σ whose level is exactly that of x_t, so β = 1 and no fresh noise
    p.combine = dataclasses.replace(p.combine, t0=t + 1, steps=t + 1, noise="residual")
    ours = restore.combine(p, torch.rand(2, 3, 16, 16), y, sigma_exact, model, s, torch.Generator().manual_seed(0))
    alone = reverse.reverse_from(model, s, s.alphas_cumprod[t].sqrt() * (2 * y - 1), reverse.partial_timesteps(t),
                                 torch.Generator().manual_seed(0))  # fmt: skip
    torch.testing.assert_close(ours, (alone + 1) / 2, atol=1e-5, rtol=1e-5)


def test_restore_outputs(done):
    p, _, paths, results = done
    d = data.load_arrays(paths.restored("dip"), "x")
    assert d["images"].shape == (3, 3, 16, 16, 3) and d["oracle"].shape == d["images"].shape
    assert list(d["curve_iterations"]) == [3, 6, 9, 12] and d["curve_psnr"].shape == (3, 4, 5)
    assert all(s in (3, 6, 9, 12) for s in d["stop"])
    dd = data.load_arrays(paths.restored("ddpm"), "x")
    assert list(dd["t_start"]) == [
        reverse.timestep_for_noise_std(Schedule("linear", 50), 2 * s / 255) + 1 for s in p.noise.sigmas
    ]
    c = data.load_arrays(paths.restored("dip-ddpm"), "x")
    assert c["images"].shape == (3, 3, 16, 16, 3) and list(c["steps"]) == [2, 2, 2]
    assert read_json(paths.restore_timing("dip"))["method"] == "dip"


def test_evaluate_and_package(done):
    p, _, paths, results = done
    m = read_json(detail_path(paths.root, config.TASK))  # the whole evaluation; the metrics file is its view
    assert m == results["evaluate"] and m["sigmas"] == [15.0, 25.0, 50.0]
    assert read_json(paths.metrics) == metrics_view(config.TASK, m)
    e = m["sigma_25"]
    assert e["dip_oracle"]["psnr"]["mean"] >= e["dip"]["psnr"]["mean"] - 1e-9
    assert set(read_json(paths.timings)) == {*config.METHODS, "machine"}  # the machine that made them
    assert not any("seconds" in k for k in str(m).split("'"))  # no wall-clock in metrics
    assert (paths.plots / "dip_curve.csv").read_text().startswith("iteration,test_psnr_s15,val_psnr_s15")
    assert (paths.plots / "dip_curve.png").is_file() and (paths.plots / "grid.png").is_file()
    report = paths.report.read_text()
    assert "## Ablations" in report and "(oracle)" in report and "Limitations" in report


def test_golden_fixed_seed(done):
    """Fixed seed, tiny params: the same numbers every run (recomputed, not read back)."""
    p, common, paths, results = done
    again = restore.run(p, common, paths, "dip-ddpm")["out"]["images"]
    np.testing.assert_array_equal(again, results["dip-ddpm"]["out"]["images"])
    first = data.load_arrays(paths.restored("dip"), "x")["curve_psnr"][1, :, 0]
    assert first.shape == (4,) and np.all(np.isfinite(first))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("noise.sigmas", [0, 25], "sigmas\\[0\\]"), ("noise.sigmas", [-5], "sigmas\\[0\\]"),
     ("combine.t0", -1, "combine.t0"), ("dip.record_every", 0, "record_every"), ("net.channels", [], "net.channels")],
)  # fmt: skip
def test_bad_params_raise_params_error(key, value, match):
    p, _ = tiny_params()
    section, name = key.split(".")
    setattr(getattr(p, section), name, value)
    with pytest.raises(ParamsError, match=match):
        config.validate(p)


def test_t0_beyond_the_schedule_is_a_params_error(done):
    p, common, paths, _ = done
    bad = dataclasses.replace(p, combine=dataclasses.replace(p.combine, t0=51))
    with pytest.raises(ParamsError, match="beyond the prior's schedule"):
        restore.run(bad, common, paths, "dip-ddpm")
    with pytest.raises(ParamsError, match="unknown dip-ddpm-restore method"):
        restore.run(p, common, paths, "bm3d")


def cli(tmp_path: Path, params: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(params)
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("section", "match"),
    [("noise: {sigmas: [0, 25]}", "sigmas[0]"), ("noise: {sigmas: [-10]}", "σ must be in (0, 255]"),
     ("combine: {t0: -2}", "combine.t0"), ("dip: {stop_rule: early}", "stop_rule")],
)  # fmt: skip
def test_bad_params_give_one_error_line(tmp_path, section, match):
    r = cli(tmp_path, f"common: {{mlflow: false}}\ndip-ddpm:\n  {section}\n", "stages.dip_ddpm.prepare")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error:") and match in r.stderr
    assert "Traceback" not in r.stderr


def test_t0_beyond_schedule_cli_one_line_and_outputs_untouched(done, tmp_path):
    p, _, paths, _ = done
    import shutil

    shutil.copytree(paths.root, tmp_path / "repo")
    before = (tmp_path / "repo" / "data/dip-ddpm/restored/dip-ddpm/images.npy").read_bytes()
    params = ("common: {mlflow: false, device: cpu}\ndip-ddpm:\n  data: {n_images: 3, val_images: 2, image_size: 16}\n"
              "  net: {channels: [8, 8], input_channels: 8, skip_channels: 2}\n  combine: {t0: 999, steps: 2}\n")  # fmt: skip
    r = cli(tmp_path / "repo", params, "stages.dip_ddpm.restore", "dip-ddpm")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "beyond the prior's schedule (T = 50)" in r.stderr
    assert (tmp_path / "repo" / "data/dip-ddpm/restored/dip-ddpm/images.npy").read_bytes() == before


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "another model"])
def test_damaged_prior_one_error_line_naming_it(done, tmp_path, damage):
    """The prior is read with weights_only=True; missing, empty, cut short or another file: one line naming it."""
    _, _, paths, _ = done
    import shutil

    shutil.copytree(paths.root, tmp_path / "repo")
    prior = config.Paths(tmp_path / "repo").prior
    good = prior.read_bytes()
    if damage == "missing":
        prior.unlink()
    elif damage == "another model":
        torch.save({"config": {"image_size": 16}, "ema": {}}, prior)
    else:
        prior.write_bytes(b"" if damage == "empty" else good[: len(good) // 2])
    params = ("common: {mlflow: false, device: cpu}\ndip-ddpm:\n  data: {n_images: 3, val_images: 2, image_size: 16}\n"
              "  net: {channels: [8, 8], input_channels: 8, skip_channels: 2}\n  combine: {t0: 4, steps: 2}\n")  # fmt: skip
    r = cli(tmp_path / "repo", params, "stages.dip_ddpm.restore", "ddpm")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {Path('models/ddpm/model.pt')}: ") and "ddpm-train" in r.stderr
