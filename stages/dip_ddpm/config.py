"""Parameters (the `dip-ddpm:` section of params.yaml) and file locations of the dip-ddpm task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from stages.common.params import CommonParams, ParamsError, load_common, load_params, validator
from stages.common.paths import TaskPaths

TASK = "dip-ddpm"
METHODS = ("dip", "ddpm", "dip-ddpm")  # the variants of dip-ddpm-restore
PRIOR = Path("models", "ddpm", "model.pt")  # the ddpm task's trained U-Net (EMA weights) and its schedule


@dataclasses.dataclass
class DataParams:
    # sample: fresh faces from stages/ddpm/faces.py with a seed the ddpm task never uses;
    # dir:<folder>: images spread evenly over the sorted file list (e.g. CIFAR-10's test/<class>/*.jpg)
    source: str = "sample"
    sample_seed: int = 4004  # ddpm draws its training faces with seed 0
    n_images: int = 8  # test images
    val_images: int = 2  # separate validation images: they set DIP's stopping iteration (never the test images)
    image_size: int = 32  # must equal the prior's resolution
    # dir: only the files after the first `skip` of the sorted list, e.g. the ones a prior trained on the first
    # ddpm.prepare.max_images of the same folder never saw (0 = all)
    skip: int = 0
    celeba_crop: int = 140  # aligned CelebA (178×218): cut as ddpm-prepare cuts its training faces (0 = none)


@dataclasses.dataclass
class NoiseParams:
    sigmas: list[float] = dataclasses.field(default_factory=lambda: [15.0, 25.0, 50.0])  # 0–255 scale
    seed: int = 0  # one fixed draw per (image, σ), stored by prepare; every method sees the same noisy images


@dataclasses.dataclass
class NetParams:
    """DIP's encoder–decoder (Ulyanov et al.'s `skip` network, smaller), shared by `dip` and `dip-ddpm`."""

    arch: Literal["skip", "plain"] = "skip"  # plain = the same encoder–decoder without skip connections
    channels: list[int] = dataclasses.field(
        default_factory=lambda: [16, 16, 16]
    )  # one level per entry, each halves H, W
    skip_channels: int = 4
    input_channels: int = 32  # the fixed noise input z ~ U(0, 0.1)
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    lr: float = 0.01  # Adam
    input_noise: float = 0.033  # std of the perturbation added to z every iteration (Ulyanov: 1/30)


@dataclasses.dataclass
class DipParams:
    iterations: int = 300  # DIP is run this long to record its whole PSNR curve
    record_every: int = 10  # PSNR against the clean image every k iterations
    stop_rule: Literal["validation", "fixed"] = "validation"  # validation: best mean PSNR on the validation images
    stop_iteration: int = 150  # the fixed rule's iteration (a multiple of record_every)


@dataclasses.dataclass
class DdpmParams:
    """DDPM alone: the noisy image taken as x_t at the σ-matched timestep, then the reverse process."""

    steps: int = 0  # DDIM steps from t (0 = every timestep t … 0)
    eta: float = 0.0  # 0: deterministic DDIM; 1 with steps 0: DDPM's ancestral chain


@dataclasses.dataclass
class CombineParams:
    """DIP + DDPM: a short DIP fit, brought to the noise level of t0, then a shortened DDIM reverse process."""

    dip_iterations: int = 60
    noise: Literal["residual", "fresh"] = "residual"  # residual: x_dip + β·(y − x_dip); fresh: x_dip + Gaussian noise
    t0: int = 10  # 1-based start timestep (x_{t0}); 0 = return the DIP estimate itself
    steps: int = 3  # DDIM steps from t0 (at most t0: a smaller t0 takes every timestep)
    eta: float = 0.0
    guidance: float = 0.0  # pull of x̂_0 towards the observation at each step: x̂_0 += g·(y − x̂_0)


@dataclasses.dataclass
class DipDdpmParams:
    seed: int = 0
    threads: int = 1  # torch CPU threads for these stages; 0 = common.threads (small convs: 1 is fastest, and far faster on a loaded CPU)
    data: DataParams = dataclasses.field(default_factory=DataParams)
    noise: NoiseParams = dataclasses.field(default_factory=NoiseParams)
    net: NetParams = dataclasses.field(default_factory=NetParams)
    dip: DipParams = dataclasses.field(default_factory=DipParams)
    ddpm: DdpmParams = dataclasses.field(default_factory=DdpmParams)
    combine: CombineParams = dataclasses.field(default_factory=CombineParams)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ParamsError(f"parameter 'dip-ddpm.{key}' {message}")


@validator
def validate(p: DipDdpmParams) -> DipDdpmParams:
    """Ranges of every parameter, before anything is built (bounds that need the prior are checked in restore)."""
    d, n, net, dip, dd, c = p.data, p.noise, p.net, p.dip, p.ddpm, p.combine
    # upper bounds: generous, but finite, so a typo cannot ask for terabytes before anything runs
    _check(0 <= p.threads <= 1024, "threads", f"is {p.threads}; must be in [0, 1024]")
    _check(1 <= d.n_images <= 100_000, "data.n_images", f"is {d.n_images}; must be in [1, 100000]")
    _check(1 <= d.val_images <= 100_000, "data.val_images", f"is {d.val_images}; must be in [1, 100000]")
    _check(0 <= d.skip <= 10_000_000, "data.skip", f"is {d.skip}; must be in [0, 10000000]")
    _check(0 <= d.celeba_crop <= 178, "data.celeba_crop", f"is {d.celeba_crop}; must be in [0, 178]")
    _check(
        8 <= d.image_size <= 2048 and d.image_size % 8 == 0,
        "data.image_size",
        f"is {d.image_size}; must be a multiple of 8 in [8, 2048]",
    )
    _check(len(n.sigmas) >= 1, "noise.sigmas", "is empty")
    for i, s in enumerate(n.sigmas):
        _check(0 < s <= 255, f"noise.sigmas[{i}]", f"is {s:g}; σ must be in (0, 255] (the 0–255 scale)")
    _check(len(set(n.sigmas)) == len(n.sigmas), "noise.sigmas", "has duplicates")
    _check(1 <= len(net.channels) <= 5, "net.channels", "must have 1 to 5 levels")
    _check(all(1 <= ch <= 4096 for ch in net.channels), "net.channels", "must be in [1, 4096]")
    _check(d.image_size % 2 ** len(net.channels) == 0, "net.channels",
           f"has {len(net.channels)} levels; image_size {d.image_size} must be divisible by 2^levels")  # fmt: skip
    _check(1 <= net.skip_channels <= 4096, "net.skip_channels", "must be in [1, 4096]")
    _check(1 <= net.input_channels <= 4096, "net.input_channels", "must be in [1, 4096]")
    _check(net.lr > 0, "net.lr", "must be > 0")
    _check(net.input_noise >= 0, "net.input_noise", "must be >= 0")
    _check(1 <= dip.iterations <= 10_000_000, "dip.iterations", "must be in [1, 10000000]")
    _check(1 <= dip.record_every <= dip.iterations, "dip.record_every", "must be in [1, dip.iterations]")
    if dip.stop_rule == "fixed":
        _check(
            1 <= dip.stop_iteration <= dip.iterations and dip.stop_iteration % dip.record_every == 0,
            "dip.stop_iteration", "must be a multiple of dip.record_every within [1, dip.iterations]",
        )  # fmt: skip
    _check(0 <= dd.steps <= 1_000_000, "ddpm.steps", "must be in [0, 1000000]")
    _check(0 <= dd.eta <= 1, "ddpm.eta", "must be in [0, 1]")
    _check(1 <= c.dip_iterations <= 10_000_000, "combine.dip_iterations", "must be in [1, 10000000]")
    _check(0 <= c.t0 <= 1_000_000, "combine.t0", f"is {c.t0}; must be in [0, 1000000] (0 = the DIP estimate)")
    _check(1 <= c.steps <= 1_000_000, "combine.steps", "must be in [1, 1000000]")
    _check(0 <= c.eta <= 1, "combine.eta", "must be in [0, 1]")
    _check(0 <= c.guidance <= 1, "combine.guidance", "must be in [0, 1]")
    return p


class Paths(TaskPaths):
    """Every file the dip-ddpm stages read or write, beyond the shared ones in TaskPaths."""

    task = TASK

    @property
    def prior(self) -> Path:
        return self._p(*PRIOR.parts)

    def restored(self, method: str) -> Path:
        return self._p("data", TASK, "restored", method)

    def restore_timing(self, method: str) -> Path:
        return self._p("timings", f"{TASK}-restore-{method}.json")

    @property
    def timings(self) -> Path:
        return self._p("timings", f"{TASK}.json")

    @property
    def metrics(self) -> Path:
        return self._p("metrics", f"{TASK}.json")


def load(path: str | Path = "params.yaml") -> tuple[DipDdpmParams, CommonParams]:
    return validate(load_params(TASK, DipDdpmParams, path)), load_common(path)
