"""Every task's full-scale model for a few dozen training steps: step time, samples/s, peak GPU memory, errors.

    python -m benchmarks.gpu_check                          # CUDA: full scale, 30 steps; CPU: tiny sizes, 3 steps
    python -m benchmarks.gpu_check --tasks ddpm,vit --json gpu_check.json
    python -m benchmarks.gpu_check --tiny --steps 1         # the CPU path (tests/test_gpu_check.py runs it)
    python -m benchmarks.gpu_check --full --batch-size 1 --steps 1 --warmup 0   # full-scale models, a CPU smoke

Each task's model is built by the constructor its trainer uses, from the task's own params dataclass: at full scale
params.yaml with the task's largest real-data preset of presets/ applied (`FULL_SCALE` below: the same overrides as
`python -m stages.common.preset`), with `--tiny` params.yaml with tests/tiny_params.yaml merged over it. The batches
are random tensors of the real shapes, dtypes and vocabulary (no data, no network; files only in a temporary
folder), the loss is the trainer's, the optimizer AdamW (the trainers' step cost; coco-caption and DIP use Adam, the
same cost), with the trainer's bf16 autocast (CUDA only, as the trainers), channels_last and gradient clipping.
`--warmup` untimed steps, then `--steps` timed ones between two `torch.cuda.synchronize()`; the peak GPU memory is
`torch.cuda.max_memory_allocated()` from building the model to the last step, reset between tasks.

A task that fails is a row with its error's first line, and the other tasks still run; the exit status is 1 if any
task failed. vlm-caption is listed as skipped: its full scale is an 11B model that has to be downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from stages.common import runtime

ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = ROOT / "tests" / "tiny_params.yaml"

# Numbers the real data decides, taken from the course's data (the prepare stages read them from the files):
NEWS_CLASSES = 4  # AG News (the `ag-full` preset); the vocabulary is `news.prepare.max_vocab`, the cap it reaches
MYGO_CLASSES = 10  # the course's 10 characters (and CIFAR-10, the stand-in)
VIT_CLASSES = 10  # CIFAR-10
VIT_IMAGE_SIZE = 32  # CIFAR-10 (the trainer's ViT(..., 32, ...))
COCO_VOCAB = 1004  # the course's coco2014_vocab.json: 1,000 words + <NULL>, <START>, <END>, <UNK>
POKEMON_PALETTE = 167  # the course's colormap.txt: the vocabulary of the sprites' tokens
MINI_IMAGENET_CLASSES = 50  # ../shared/data/mini_imagenet, the data of the dynconv and twolayer presets


@dataclasses.dataclass
class Bench:
    """What one task's training step is made of."""

    model: Any  # torch.nn.Module, already on the device (and in the trainer's memory format)
    make_batch: Callable[[], Any]  # a fresh random batch on the device
    loss_fn: Callable[[Any, Any], Any]  # (model, batch) -> scalar loss, as the trainer computes it
    batch_size: int  # samples per step (images, texts, sprites; DIP: images fitted at once)
    bf16: bool = False  # the trainer's bf16 autocast, on CUDA only (as every trainer has it)
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    after_step: Callable[[], None] | None = None  # the trainer's per-step extra (ddpm: the EMA update)


@dataclasses.dataclass(frozen=True)
class Task:
    build: Callable[[Path, Any, int | None], Bench]  # (params file, device, batch size override) -> Bench
    presets: tuple[tuple[str, str], ...] = ()  # (section, preset of presets/<section>.yaml) applied at full scale
    overrides: tuple[str, ...] = ()  # `key=value` applied after them (mygo has no presets file)


def _batch(batch: int | None, default: int) -> int:
    """The task's own batch size, or `--batch-size` when given."""
    return default if batch is None else batch


def _images(
    model: Any, n: int, size: int, classes: int, label_smoothing: float, device: Any, fmt: Any = None, **bench: Any
) -> Bench:
    """An image classifier's step (mygo, vit, twolayer): random images of the real size, random labels, the
    trainers' label-smoothed cross-entropy (on fp32 logits under bf16)."""
    import torch
    import torch.nn.functional as F

    def make_batch():
        x = torch.randn(n, 3, size, size, device=device)
        return (x if fmt is None else x.contiguous(memory_format=fmt)), torch.randint(0, classes, (n,), device=device)

    def loss_fn(model, b):
        return F.cross_entropy(model(b[0]).float(), b[1], label_smoothing=label_smoothing)

    return Bench(model, make_batch, loss_fn, n, **bench)  # fmt: skip


# --- one function per task: its real model, a random batch of the real shapes, the trainer's loss ------------


def news(params: Path, device: Any, batch: int | None) -> Bench:
    import torch
    import torch.nn.functional as F

    from stages.news import config
    from stages.news.model import CLS_ID, NewsClassifier

    p, _ = config.load(params)
    t, n = p.train, _batch(batch, p.train.batch_size)
    vocab, length = p.prepare.max_vocab, p.prepare.max_len  # every text as long as allowed: the costliest batch
    model = NewsClassifier(p.model, vocab, NEWS_CLASSES).to(device)

    def make_batch():
        ids = torch.randint(CLS_ID + 1, vocab, (n, length), device=device)
        ids[:, 0] = CLS_ID
        return ids, torch.randint(0, NEWS_CLASSES, (n,), device=device)

    def loss_fn(model, b):
        return F.cross_entropy(model(b[0]).float(), b[1], label_smoothing=t.label_smoothing)

    return Bench(model, make_batch, loss_fn, n, bf16=True, lr=t.lr, weight_decay=t.weight_decay, grad_clip=t.grad_clip)


def mygo(params: Path, device: Any, batch: int | None) -> Bench:

    from stages.mygo import config
    from stages.mygo.model import build

    p, _ = config.load(params)
    t, m, n = p.train, p.model(p.ensemble[0]), _batch(batch, p.train.batch_size)
    size = p.prepare.image_size
    fmt = runtime.memory_format(device, t.channels_last)
    model = build(m, MYGO_CLASSES).to(device, memory_format=fmt)
    return _images(model, n, size, MYGO_CLASSES, t.label_smoothing, device, fmt, bf16=t.bf16, lr=t.lr,
                   weight_decay=t.weight_decay)  # fmt: skip


def vit(params: Path, device: Any, batch: int | None) -> Bench:
    from stages.vit import config
    from stages.vit.model import ViT

    p, _ = config.load(params)
    m, t, n = p.model, p.train, _batch(batch, p.train.batch_size)
    model = ViT(VIT_CLASSES, VIT_IMAGE_SIZE, m.patch_size, m.dim, m.depth, m.heads, m.mlp_ratio, m.dropout,
                m.attention == "sdpa").to(device)  # fmt: skip
    # the trainer: fp32
    return _images(model, n, VIT_IMAGE_SIZE, VIT_CLASSES, p.augment.label_smoothing, device, lr=t.lr,
                   weight_decay=t.weight_decay)  # fmt: skip


def coco_caption(params: Path, device: Any, batch: int | None) -> Bench:
    import torch

    from stages.coco_caption import config
    from stages.coco_caption.data import CAPTION_LEN, START
    from stages.coco_caption.model import CaptioningTransformer, temporal_softmax_loss

    p, _ = config.load(params)
    m, n = p.model, _batch(batch, p.train.batch_size)
    name = max(p.configs, key=lambda k: (p.configs[k].num_layers, p.configs[k].num_heads))  # the largest of the matrix
    c = p.config(name)
    dim, length = p.data.feature_dim, min(CAPTION_LEN, m.max_length + 1)  # the course's captions: 17 tokens
    model = CaptioningTransformer(COCO_VOCAB, dim, m.embed_dim, c.num_heads, c.num_layers, m.ff_dim, m.dropout,
                                  m.max_length, m.activation).to(device)  # fmt: skip

    def make_batch():
        caps = torch.randint(START + 1, COCO_VOCAB, (n, length), device=device)
        caps[:, 0] = START
        return torch.randn(n, dim, device=device), caps

    def loss_fn(model, b):
        return temporal_softmax_loss(model(b[0], b[1][:, :-1]), b[1][:, 1:])

    return Bench(model, make_batch, loss_fn, n, lr=c.lr)  # the trainer: Adam, fp32


def ddpm(params: Path, device: Any, batch: int | None) -> Bench:
    import torch

    from stages.common.diffusion import EMA, Schedule, UNet
    from stages.ddpm import config

    p, _ = config.load(params)
    t, n, cfg = p.train, _batch(batch, p.train.batch_size), config.unet_config(p)
    model = UNet(cfg).to(device)
    schedule = Schedule(p.diffusion.schedule, p.diffusion.timesteps)
    ema = EMA(model, t.ema_decay)
    generator = torch.Generator().manual_seed(p.seed)  # the trainer draws t and the noise on the CPU, as here

    def make_batch():
        return torch.rand(n, 3, cfg.image_size, cfg.image_size, device=device) * 2 - 1  # images in [-1, 1]

    def loss_fn(model, x0):
        return schedule.loss(model, x0, generator)

    return Bench(model, make_batch, loss_fn, n, bf16=True, lr=t.lr, weight_decay=t.weight_decay,
                 grad_clip=t.grad_clip, after_step=lambda: ema.update(model))  # fmt: skip


def pokemon(params: Path, device: Any, batch: int | None) -> Bench:
    import torch

    from stages.pokemon import config
    from stages.pokemon.data import SEQ_LEN
    from stages.pokemon.model import build_model, next_token_loss

    p, _ = config.load(params)
    t, n = p.train, _batch(batch, p.train.batch_size)
    model = build_model(p.model, POKEMON_PALETTE).to(device)

    def make_batch():
        return torch.randint(0, POKEMON_PALETTE, (n, SEQ_LEN), device=device)

    return Bench(model, make_batch, next_token_loss, n, bf16=True, lr=t.lr, weight_decay=t.weight_decay,
                 grad_clip=t.grad_clip)  # fmt: skip


def dynconv(params: Path, device: Any, batch: int | None) -> Bench:
    return _dynconv(params, device, batch, "dynamic")


def _dynconv(params: Path, device: Any, batch: int | None, name: str) -> Bench:
    import torch
    import torch.nn.functional as F

    from stages.dynconv import config
    from stages.dynconv.model import build, sample_masks
    from stages.mini_imagenet import config as data_config

    p, _ = config.load(params)
    p.check_model(name)
    t, variant, n = p.train, p.model(name), _batch(batch, p.train.batch_size)
    size = data_config.load(params)[0].prepare.image_size
    model = build(name, p, MINI_IMAGENET_CLASSES).to(device)
    g = torch.Generator().manual_seed(p.seed)

    def make_batch():
        x = torch.randn(n, 3, size, size, device=device)
        mask = sample_masks(n, variant.channel_sampling, g).to(device)
        return x, mask, torch.randint(0, MINI_IMAGENET_CLASSES, (n,), device=device)

    def loss_fn(model, b):
        x, mask, y = b
        logits = model(x, mask)
        loss = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
        if t.consistency and variant.channel_sampling in config.RANDOM_SAMPLING:  # as the trainer: RGB teaches
            with torch.no_grad():
                teacher = F.softmax(model(x, torch.ones_like(mask)), 1)
            loss = loss + t.consistency * F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean")
        return loss

    return Bench(model, make_batch, loss_fn, n, lr=t.lr, weight_decay=t.weight_decay)  # the trainer: fp32


def twolayer(params: Path, device: Any, batch: int | None) -> Bench:
    return _twolayer(params, device, batch, "twolayer")


def twolayer_resnet34(params: Path, device: Any, batch: int | None) -> Bench:
    return _twolayer(params, device, batch, "resnet34")


def _twolayer(params: Path, device: Any, batch: int | None, name: str) -> Bench:
    from stages.mini_imagenet import config as data_config
    from stages.twolayer import config
    from stages.twolayer.model import build

    p, _ = config.load(params)
    config.validate(p, config.check_model(name))
    t, n = p.train, _batch(batch, p.train.batch_size)
    size = t.image_size or data_config.load(params)[0].prepare.image_size
    model = build(name, p, MINI_IMAGENET_CLASSES, size).to(device)
    # the trainer: fp32
    return _images(model, n, size, MINI_IMAGENET_CLASSES, p.augment.label_smoothing, device, lr=t.lr,
                   weight_decay=t.weight_decay)  # fmt: skip


def dip_ddpm(params: Path, device: Any, batch: int | None) -> Bench:
    """DIP's grouped network fitting every test and validation image at once (dip.fit's step); the prior is ddpm's."""
    import torch

    from stages.dip_ddpm import config
    from stages.dip_ddpm.dip import GroupedSkipNet, image_seeds

    p, _ = config.load(params)
    net, size = p.net, p.data.image_size
    groups = _batch(batch, p.data.n_images + p.data.val_images)
    model = GroupedSkipNet(net, groups).to(device)
    model.init_per_group(image_seeds(p.seed, list(range(groups))))
    z = torch.rand(1, net.input_channels * groups, size, size, device=device) * 0.1

    def make_batch():
        target = torch.rand(groups, 3, size, size, device=device)
        return z + net.input_noise * torch.randn_like(z), target

    def loss_fn(model, b):
        return ((model(b[0]) - b[1]) ** 2).mean(dim=(1, 2, 3)).sum()

    return Bench(model, make_batch, loss_fn, groups, lr=net.lr)  # dip.fit: Adam, fp32


# The full scale of each task: its largest real-data preset (mygo has no presets file: its README's "Full scale").
TASKS: dict[str, Task] = {
    "news": Task(news, (("news", "ag-full"),)),
    "mygo": Task(
        mygo,
        overrides=("mygo.prepare.image_size=128", "mygo.ensemble=[resnet18,cnn_deep,cnn]", "mygo.train.batch_size=64"),
    ),
    "vit": Task(vit, (("vit", "course"),)),
    "coco-caption": Task(coco_caption, (("coco-caption", "course"),)),
    "ddpm": Task(ddpm, (("ddpm", "full"),)),
    "pokemon": Task(pokemon, (("pokemon", "strong30"),)),
    "dynconv": Task(dynconv, (("mini-imagenet", "real64"), ("dynconv", "real64-wide"))),
    "twolayer": Task(twolayer, (("twolayer", "real30"),)),
    "twolayer@resnet34": Task(twolayer_resnet34, (("twolayer", "real30"),)),
    "dip-ddpm": Task(dip_ddpm, (("dip-ddpm", "cifar10"),)),
}
SKIPPED = {"vlm-caption": "skipped: needs the unsloth model"}


# --- params -----------------------------------------------------------------------------------------------------


def _merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        base[key] = _merge(dict(base.get(key) or {}), value) if isinstance(value, dict) else value
    return base


def _set(sections: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = sections
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def params_file(name: str, task: Task, tiny: bool, folder: Path) -> tuple[Path, str]:
    """The task's params file (every section, as the stages read it) and the name of its setting."""
    from stages.common.preset import overrides

    sections = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    if tiny:
        _merge(sections, yaml.safe_load(TINY_PARAMS.read_text(encoding="utf-8")))
        label = "tiny"
    else:
        items = [item for section, preset in task.presets for item in overrides(section, preset, ROOT)]
        for item in [*items, *task.overrides]:
            key, _, value = item.partition("=")
            _set(sections, key, yaml.safe_load(value))  # -S syntax: YAML flow values ([1,2], numbers, plain words)
        label = "+".join(preset for _, preset in task.presets) or "README full scale"
    path = folder / f"{name.replace('@', '_')}.yaml"
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return path, label


# --- the measured loop, written once ---------------------------------------------------------------------------


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(bench: Bench, device: Any, steps: int, warmup: int, compile: bool = False) -> dict[str, Any]:
    """`warmup` steps (timed apart: with `compile` they hold torch.compile's compilation), then `steps` timed ones:
    the trainer's step (autocast, backward, clip, AdamW)."""
    import torch

    model = bench.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=bench.lr, weight_decay=bench.weight_decay, fused=True)
    forward = torch.compile(model) if compile else model  # same parameters: the optimizer steps both

    def step() -> Any:
        batch = bench.make_batch()
        with runtime.autocast(device, bench.bf16):
            loss = bench.loss_fn(forward, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if bench.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), bench.grad_clip)
        optimizer.step()
        if bench.after_step is not None:
            bench.after_step()
        return loss

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    seconds = time.perf_counter() - start
    if steps and not torch.isfinite(loss.detach()).item():
        raise FloatingPointError(f"the loss is {loss.item()} after {warmup + steps} steps")
    return {
        "params_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 3),
        "batch_size": bench.batch_size,
        "precision": "bf16" if bench.bf16 and device.type == "cuda" else "fp32",  # runtime.autocast's rule
        "step_ms": round(1000 * seconds / max(steps, 1), 2),
        "samples_per_s": round(bench.batch_size * steps / max(seconds, 1e-9), 1),
        "warmup_s": round(warmup_seconds, 2),
    }


def _error_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {line[:300]}" if line else type(err).__name__


def run_task(name: str, task: Task, device: Any, tiny: bool, steps: int, warmup: int, batch: int | None,
             folder: Path, compile: bool = False) -> dict[str, Any]:  # fmt: skip
    """One row: the task's figures, or its error (the other tasks go on either way)."""
    import torch

    from stages.common.runtime import seed_everything

    row: dict[str, Any] = {"task": name, "preset": "", "params_m": None, "batch_size": None, "precision": "",
                           "step_ms": None, "samples_per_s": None, "peak_mib": None, "error": None}  # fmt: skip
    try:
        path, row["preset"] = params_file(name, task, tiny, folder)
        seed_everything(0)  # the trainers' setup: seeds, deterministic kernels where torch has them
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "no deterministic implementation" and the like, once per op
            row.update(measure(task.build(path, device, batch), device, steps, warmup, compile))
        if device.type == "cuda":
            row["peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any failure is this task's row; SystemExit: a bad preset
        row["error"] = _error_line(err)
    gc.collect()  # the model, its optimizer and an out-of-memory error's frames go before the next task
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def run(tasks: Sequence[str] | None = None, *, device: str = "auto", tiny: bool | None = None, steps: int | None = None,
        warmup: int | None = None, batch: int | None = None,
        compile: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Every selected task's row, and what made them (device, scale, steps). `tiny` None: tiny unless CUDA."""
    import torch

    from stages.common.runtime import resolve_device

    dev = resolve_device(device)
    tiny = dev.type != "cuda" if tiny is None else tiny
    steps = (3 if dev.type == "cpu" else 30) if steps is None else steps
    warmup = (1 if dev.type == "cpu" else 3) if warmup is None else warmup
    names = select(tasks)
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        for name in names:
            if name in SKIPPED:
                rows.append({"task": name, "preset": "", "error": None, "skipped": SKIPPED[name]})
                continue
            row = run_task(name, TASKS[name], dev, tiny, steps, warmup, batch, Path(folder), compile)
            rows.append(row)
            status = row["error"] or f"{row['step_ms']} ms/step"
            print(f"gpu_check: {name}: {status}", file=sys.stderr, flush=True)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    info = {"device": name, "scale": "tiny" if tiny else "full", "steps": steps, "warmup": warmup,
            "batch_size_override": batch, "compile": compile, "torch": torch.__version__,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    return rows, info


def select(tasks: Sequence[str] | None) -> list[str]:
    """The registry's names in order; a name without `@` also picks its `name@...` entries."""
    every = [*TASKS, *SKIPPED]
    if not tasks:
        return every
    unknown = [t for t in tasks if not any(n == t or n.split("@")[0] == t for n in every)]
    if unknown:
        raise SystemExit(f"error: unknown task(s) {', '.join(unknown)} (have: {', '.join(every)})")
    return [n for n in every if n in tasks or n.split("@")[0] in tasks]


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as one markdown table."""

    def cell(value: Any) -> str:
        return "-" if value is None or value == "" else str(value)

    head = ["task", "preset", "params (M)", "batch", "precision", "step ms", "samples/s", "peak GPU MiB", "error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("skipped"):
            cells = [r["task"], *["-"] * 7, r["skipped"]]
        else:
            keys = ("task", "preset", "params_m", "batch_size", "precision", "step_ms", "samples_per_s", "peak_mib")
            cells = [cell(r.get(k)) for k in keys] + [(r.get("error") or "").replace("|", "\\|") or "-"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scale = ap.add_mutually_exclusive_group()
    scale.add_argument("--tiny", dest="tiny", action="store_true", default=None, help="tests/tiny_params.yaml sizes")
    scale.add_argument("--full", dest="tiny", action="store_false", help="the full-scale presets (default on CUDA)")
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per task (default 30 on GPU, 3 on CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 on GPU, 1 on CPU)")
    ap.add_argument("--batch-size", type=int, default=None, help="override every task's batch (a smoke check)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: 1 on a CPU, torch's on CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile each model (the warm-up holds compilation)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows (and the run's settings) here")
    args = ap.parse_args(argv)

    import torch

    from stages.common.params import ParamsError

    if args.threads or not torch.cuda.is_available():
        torch.set_num_threads(args.threads or 1)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        rows, info = run(tasks, device=args.device, tiny=args.tiny, steps=args.steps, warmup=args.warmup,
                         batch=args.batch_size, compile=args.compile)  # fmt: skip
    except ParamsError as err:  # --device cuda without CUDA
        raise SystemExit(f"error: {err}") from None
    print(f"{info['device']}, {info['scale']} scale, {info['steps']} timed steps after {info['warmup']} warm-up"
          f"{' (torch.compile)' if info['compile'] else ''}, "
          f"torch {info['torch']}, {info['seconds']} s in all\n")  # fmt: skip
    print(table(rows))
    if args.json is not None:
        from stages.common.io import write_json

        write_json(args.json, {**info, "rows": rows})
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
