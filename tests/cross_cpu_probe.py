"""Small but real training steps of each model family, printed as one JSON line of digests.

`tests/test_cross_cpu.py` runs this natively and under `qemu-x86_64 -cpu <model>` (another CPU's identity,
vendor included) and compares the digests: a family whose bytes differ is one whose kernels the pins in
`stages/__init__.py` do not hold across CPUs. Run by hand to see which ops differ:

    python -m tests.cross_cpu_probe            # natively
    qemu-x86_64 -cpu EPYC-Rome .venv/bin/python -m tests.cross_cpu_probe
    python -m tests.cross_cpu_probe ops MKL_CBWR=COMPATIBLE   # try another pin (VAR=VALUE after the parts)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import stages  # noqa: F401  (the kernel pins, before torch)

for _arg in sys.argv[1:]:  # VAR=VALUE: another pin to try, set before torch loads
    if "=" in _arg:
        os.environ.__setitem__(*_arg.split("=", 1))


def digest(*tensors) -> str:
    h = hashlib.md5()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def state_digest(model) -> str:
    return digest(*model.state_dict().values())


def train(model, batches, loss_fn, steps: int = 2):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=True)
    model.train()
    for i in range(steps):
        opt.zero_grad()
        loss = loss_fn(model, batches(i))
        loss.backward()
        opt.step()
    return state_digest(model)


def ops() -> dict[str, str]:
    """Single ops on fixed random inputs."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 96, generator=g), torch.randn(96, 48, generator=g)
    x = torch.randn(4, 8, 16, 16, generator=g)
    w = torch.randn(16, 8, 3, 3, generator=g)
    v = torch.rand(4096, generator=g) * 10
    out = {
        "matmul": digest(a @ b),
        "exp": digest(torch.exp(v - 5)),
        "sqrt": digest(torch.sqrt(v)),
        "log": digest(torch.log(v + 1)),
        "tanh": digest(torch.tanh(v - 5)),
        "conv2d": digest(F.conv2d(x, w, padding=1)),
        "softmax": digest(torch.softmax(a, -1)),
        "layer_norm": digest(F.layer_norm(a, (96,))),
        "gelu": digest(F.gelu(a)),
        "sum": digest(v.sum()),
    }
    with torch.backends.mkldnn.flags(enabled=False):
        out["conv2d_no_onednn"] = digest(F.conv2d(x, w, padding=1))
    for name, kwargs in (("adamw", {}), ("adamw_fused", {"fused": True})):
        p = torch.nn.Parameter(a.clone())
        opt = torch.optim.AdamW([p], lr=1e-2, **kwargs)
        for _ in range(3):
            p.grad = torch.sin(p.detach() * 3)
            opt.step()
        out[name] = digest(p)
    return out


def families() -> dict[str, str]:
    import torch
    import torch.nn.functional as F

    from stages.common.cnn import CNNConfig, ConvNet
    from stages.common.diffusion import Schedule, UNet, UNetConfig, make_sampler
    from stages.common.transformer import Encoder

    out = {}
    g = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 16, 16, generator=g)
    labels = torch.tensor([0, 1, 2, 1])

    torch.manual_seed(0)
    out["conv_bn"] = train(
        ConvNet(3, CNNConfig(width=8, depth=2)), lambda i: (images, labels), lambda m, b: F.cross_entropy(m(b[0]), b[1])
    )

    torch.manual_seed(0)
    enc = Encoder(2, 32, 4, 64, dropout=0.0, use_sdpa=True)
    tokens = torch.randn(4, 10, 32, generator=g)
    out["transformer"] = train(enc, lambda i: tokens, lambda m, b: m(b).pow(2).mean())

    torch.manual_seed(0)
    cfg = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,))
    unet = UNet(cfg)
    schedule = Schedule("linear", 50)
    x0, noise = images[:, :, :8, :8], torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([3, 10, 25, 49])

    def ddpm_loss(m, b):
        return F.mse_loss(m(schedule.q_sample(x0, t, noise), t), noise)

    out["unet"] = train(unet, lambda i: None, ddpm_loss)
    sampler = make_sampler("ddim", schedule, 5)
    from stages.common.diffusion import generate

    samples, _ = generate(unet, sampler, 2, torch.Generator().manual_seed(2))
    out["ddim_sample"] = digest(samples)
    return out


def hf_decoder() -> dict[str, str]:
    """A tiny Hugging Face causal LM (the family vlm-caption fine-tunes), built from a config: no download."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)  # fmt: skip
    model = LlamaForCausalLM(cfg)
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(3))
    return {"hf_decoder": train(model, lambda i: ids, lambda m, b: m(input_ids=b, labels=b).loss)}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    parts = [a for a in sys.argv[1:] if "=" not in a] or ["ops", "families", "hf_decoder"]
    result = {}
    for part in parts:
        result.update({"ops": ops, "families": families, "hf_decoder": hf_decoder}[part]())
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
