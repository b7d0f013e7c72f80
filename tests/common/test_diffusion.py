"""The shared diffusion pieces: schedules, forward process, U-Net shapes, DDPM/DDIM samplers on a tiny model."""

import pytest
import torch

from stages.common import diffusion
from stages.common.diffusion import EMA, DDIMSampler, DDPMSampler, Schedule, UNet, UNetConfig, generate, make_sampler

TINY = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), blocks_per_level=1, attention_resolutions=(4,))


def tiny_model(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(TINY).eval()


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedules_go_from_data_to_noise(kind):
    s = Schedule(kind, 1000)
    a = s.alphas_cumprod
    assert a.shape == (1000,) and (a[1:] < a[:-1]).all()
    assert a[0] > 0.99 and a[-1] < 1e-3
    assert (s.betas > 0).all() and (s.betas < 1).all()
    # a shorter T with the linear schedule still ends in (almost) pure noise
    assert Schedule(kind, 100).alphas_cumprod[-1] < 1e-2


def test_unknown_schedule_and_sampler():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        diffusion.beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", Schedule("linear", 20))
    with pytest.raises(ValueError, match="DDIM steps"):
        DDIMSampler(Schedule("linear", 20), steps=21)
    with pytest.raises(ValueError, match="at least 20 timesteps"):
        Schedule("linear", 10)


def test_q_sample_matches_the_closed_form():
    s = Schedule("linear", 100)
    x0, noise = torch.ones(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t = torch.tensor([0, 99])
    xt = s.q_sample(x0, t, noise)
    for i in range(2):
        a = s.alphas_cumprod[t[i]]
        assert torch.allclose(xt[i], a.sqrt() * x0[i] + (1 - a).sqrt() * noise[i])


def test_unet_shapes_and_time_embedding():
    model = tiny_model()
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([0, 5, 9])
    assert model(x, t).shape == x.shape
    emb = diffusion.timestep_embedding(t, 8)
    assert emb.shape == (3, 8) and torch.allclose(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    # the output depends on t
    assert not torch.allclose(model(x, torch.zeros(3, dtype=torch.long)), model(x, torch.full((3,), 9)))
    full = UNet(
        UNetConfig(
            image_size=64,
            base_channels=128,
            channel_mults=(1, 2, 2, 2),
            blocks_per_level=2,
            attention_resolutions=(16,),
        )
    )
    assert 34e6 < sum(p.numel() for p in full.parameters()) < 37e6  # the DDPM paper's ~35.7M


def test_ddim_timesteps_are_evenly_spaced():
    s = Schedule("linear", 100)
    assert DDIMSampler(s, 10).timesteps == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert DDPMSampler(s).timesteps == list(range(99, -1, -1))
    assert make_sampler("ddim", s, 0).timesteps == DDPMSampler(s).timesteps


@pytest.mark.parametrize("sampler_name", ["ddpm", "ddim"])
def test_samplers_are_seeded_and_reproducible(sampler_name):
    model, s = tiny_model(), Schedule("linear", 20)
    sampler = make_sampler(sampler_name, s, 5, 0.0)
    a, traj = generate(model, sampler, 2, torch.Generator().manual_seed(0), record=(sampler.timesteps[0],))
    b, _ = generate(model, sampler, 2, torch.Generator().manual_seed(0))
    c, _ = generate(model, sampler, 2, torch.Generator().manual_seed(1))
    assert a.shape == (2, 3, 8, 8) and a.abs().max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(traj) == {sampler.timesteps[0], -1}


def test_ddim_with_eta_one_and_all_steps_is_ddpm():
    """DDIM's η = 1 over all T steps is the DDPM posterior (Song et al. 2021): the same draws give the same images."""
    model, s = tiny_model(), Schedule("cosine", 20)
    ddpm, _ = generate(model, DDPMSampler(s), 2, torch.Generator().manual_seed(3))
    ddim, _ = generate(model, DDIMSampler(s, 20, eta=1.0), 2, torch.Generator().manual_seed(3))
    assert torch.allclose(ddpm, ddim, atol=1e-4)


def test_ddim_eta_zero_is_deterministic_given_x_t():
    """With η = 0 the only randomness is x_T."""
    model, s = tiny_model(), Schedule("linear", 20)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, _ = generate(model, DDIMSampler(s, 4), 2, g1)
    torch.randn(100, generator=g2)  # an unrelated draw after x_T would change DDPM, not DDIM
    x_t = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    x = x_t
    sampler = DDIMSampler(s, 4)
    with torch.no_grad():
        for t in sampler.timesteps:
            x = sampler.step(model(x, torch.full((2,), t)), t, x, g2)
    assert torch.allclose(a, x.clamp(-1, 1), atol=1e-6)


def test_loss_decreases_when_fitting_one_image():
    torch.manual_seed(0)
    model, s = UNet(TINY), Schedule("linear", 20)
    x0 = torch.zeros(8, 3, 8, 8)
    x0[:, 0, 2:6, 2:6] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        loss = s.loss(model, x0, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])


def test_ema_tracks_the_weights():
    model = tiny_model()
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in ema.shadow.items()}
    ema.update(model)
    key = "stem.weight"
    assert torch.allclose(ema.shadow[key], 0.5 * before[key] + 0.5 * model.state_dict()[key])
    assert torch.equal(
        diffusion.to_uint8(torch.tensor([[[[-1.0]], [[0.0]], [[1.0]]]])),
        torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8),
    )
