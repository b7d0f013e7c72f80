"""One training step of every training stage, for `pipeline_profile.py flops`.

`PROBES` maps a training stage's name in dvc.yaml (matrix and foreach items included: `mygo-train@cnn`,
`coco-caption-train@h4_l6_lr1e-4`, ...) to a builder; the builder returns `step()`, which does ONE
optimizer step as that stage's loop does at the sample-scale defaults of params.yaml: the task's own
params (its `config.load()`), model class and loss on one batch of the stage's batch size and input
shape, backward, gradient clipping where the stage clips, the optimizer step (and the EMA update of
ddpm-train). The batches are random tensors of the right shape and dtype, so no data file is read;
where a size comes from prepared data (a vocabulary, a class count) it is the sample-scale value, from
the code where the code fixes it, else a constant noted where it is used. Left out, as they hold no
FLOPs to speak of: data loading and per-image augmentation, learning-rate schedulers, `loss.item()`.
Heavy imports happen inside the builders, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"

Step = Callable[[], None]


@functools.cache
def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _matrix(stage: str) -> list[str]:
    """The items of a dvc.yaml `matrix:` stage, a `${section.key}` list resolved from params.yaml."""
    (items,) = _yaml(ROOT / "dvc.yaml")["stages"][stage]["matrix"].values()
    if isinstance(items, str):  # e.g. ${mygo.ensemble}
        node: Any = _yaml(PARAMS)
        for key in items.strip("${}").split("."):
            node = node[key]
        items = node
    return [str(item) for item in items]


def _step(model: Any, optimizer: Any, loss_fn: Callable[[], Any], clip: float = 0.0,
          after: Callable[[], None] | None = None) -> Step:  # fmt: skip
    """zero_grad, loss, backward, optional clipping, optimizer step, `after` (the EMA update): the stages' order."""
    import torch

    model.train()

    def step() -> None:
        loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if after is not None:
            after()

    return step


def _decay_groups(model: Any, weight_decay: float, decays: Callable[[str, Any], bool]) -> list[dict]:
    decay = [q for n, q in model.named_parameters() if decays(n, q)]
    no_decay = [q for n, q in model.named_parameters() if not decays(n, q)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --- pokemon ----------------------------------------------------------------------------------


def pokemon_train() -> Step:
    import torch

    from stages.pokemon import config
    from stages.pokemon.data import N_COLORS, SEQ_LEN
    from stages.pokemon.model import build_model, next_token_loss

    p, _ = config.load(PARAMS)
    t = p.train
    model = build_model(p.model, N_COLORS)  # vocabulary = the palette: the course's 167 colours (data.N_COLORS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    batch = torch.randint(N_COLORS, (t.batch_size, SEQ_LEN))  # whole 20×20 sprites as palette indices
    return _step(model, optimizer, lambda: next_token_loss(model, batch), t.grad_clip)


def pokemon_classifier() -> Step:
    """One step of one member (the stage trains `classifier.members` of them, one after another)."""
    import torch

    from stages.pokemon import config
    from stages.pokemon.classifier import SpriteClassifier
    from stages.pokemon.data import SIDE

    p, _ = config.load(PARAMS)
    c = p.classifier
    model = SpriteClassifier(c.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=1e-4)  # 1e-4: classifier.train_member
    x = torch.rand(c.batch_size, 3, SIDE, SIDE)
    y = (torch.rand(c.batch_size) < 0.5).float()
    return _step(model, optimizer, lambda: torch.nn.functional.binary_cross_entropy_with_logits(model(x), y))


# --- news -------------------------------------------------------------------------------------

NEWS_VOCAB = 211  # data/news/prepared/tokenizer.json at sample scale (wordpunct, min_freq 2, 3000 generated texts)
NEWS_WIDTH = 36  # mean over an epoch of the longest text in a batch of 64 (the stage pads each batch to it)


def news_train() -> Step:
    import torch

    from stages.news import config
    from stages.news.corpus import CLASSES
    from stages.news.model import CLS_ID, PAD_ID, NewsClassifier

    p, _ = config.load(PARAMS)
    m, t = p.model, p.train
    model = NewsClassifier(m, NEWS_VOCAB, len(CLASSES))  # the sample corpus's 4 classes
    groups = _decay_groups(model, t.weight_decay, lambda n, q: q.dim() >= 2 and "embed" not in n and ".pe" not in n)
    optimizer = torch.optim.AdamW(groups, lr=t.lr)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    ids = torch.randint(CLS_ID + 1, NEWS_VOCAB, (t.batch_size, NEWS_WIDTH))
    ids[:, 0] = CLS_ID
    lengths = torch.randint(NEWS_WIDTH // 3, NEWS_WIDTH + 1, (t.batch_size,))
    lengths[0] = NEWS_WIDTH
    ids[torch.arange(NEWS_WIDTH) >= lengths[:, None]] = PAD_ID
    y = torch.randint(len(CLASSES), (t.batch_size,))
    return _step(model, optimizer, lambda: loss_fn(model(ids).float(), y), t.grad_clip)


# --- mygo -------------------------------------------------------------------------------------


def mygo_train(name: str) -> Callable[[], Step]:
    def build() -> Step:
        import torch

        from stages.mygo import config
        from stages.mygo.model import build as build_model
        from stages.mygo.sample_images import CLASSES
        from stages.mygo.train import make_optimizer

        p, _ = config.load(PARAMS)
        m, t = p.model(name), p.train
        model = build_model(m, len(CLASSES))  # the sample's 10 characters
        optimizer = make_optimizer(model, t)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
        size = p.prepare.image_size
        x = torch.randn(t.batch_size, 3, size, size)  # normalised, as after augment.train_transform
        y = torch.randint(len(CLASSES), (t.batch_size,))
        return _step(model, optimizer, lambda: loss_fn(model(x).float(), y))

    return build


# --- coco-caption -----------------------------------------------------------------------------


def coco_caption_vocab() -> int:
    """The sample's vocabulary: the specials + every word of the template captions (min_count 1): 28."""
    import itertools

    from stages.coco_caption import data

    attrs = itertools.product(data.SHAPES, data.COLORS, data.SIZES, data.SIDES, data.BACKGROUNDS)
    words = {w for a in attrs for caption in data.sample_captions(*a) for w in caption.split()}
    return len(data.SPECIAL) + len(words)


def coco_caption_train(name: str) -> Callable[[], Step]:
    def build() -> Step:
        import torch

        from stages.coco_caption import config
        from stages.coco_caption.data import CAPTION_LEN
        from stages.coco_caption.model import CaptioningTransformer, temporal_softmax_loss

        p, _ = config.load(PARAMS)
        c, m = p.config(name), p.model
        vocab = coco_caption_vocab()
        model = CaptioningTransformer(vocab, p.data.feature_dim, m.embed_dim, c.num_heads, c.num_layers,
                                      m.ff_dim, m.dropout, m.max_length, m.activation)  # fmt: skip
        optimizer = torch.optim.Adam(model.parameters(), lr=c.lr)
        f = torch.randn(p.train.batch_size, p.data.feature_dim)  # PCA features, feature_dim wide
        x = torch.randint(vocab, (p.train.batch_size, CAPTION_LEN))
        return _step(model, optimizer, lambda: temporal_softmax_loss(model(f, x[:, :-1]), x[:, 1:]))

    return build


# --- vit, ddpm --------------------------------------------------------------------------------


def vit_train() -> Step:
    import torch
    import torch.nn.functional as F

    from stages.vit import config
    from stages.vit.data import SAMPLE_CLASSES
    from stages.vit.model import ViT

    p, _ = config.load(PARAMS)
    m, t, a = p.model, p.train, p.augment
    model = ViT(len(SAMPLE_CLASSES), 32, m.patch_size, m.dim, m.depth, m.heads, m.mlp_ratio, m.dropout,
                m.attention == "sdpa")  # fmt: skip
    optimizer = torch.optim.AdamW(_decay_groups(model, t.weight_decay, lambda n, q: q.dim() >= 2), lr=t.lr)
    x = torch.randn(t.batch_size, 3, 32, 32)  # normalised CIFAR-sized images
    y = torch.randint(len(SAMPLE_CLASSES), (t.batch_size,))
    # mixup/cutmix are off at sample scale (lam = 1): one cross-entropy
    return _step(model, optimizer, lambda: F.cross_entropy(model(x), y, label_smoothing=a.label_smoothing))


def ddpm_train() -> Step:
    import torch

    from stages.common.diffusion import EMA, Schedule, UNet
    from stages.ddpm import config

    p, _ = config.load(PARAMS)
    t = p.train
    cfg = config.unet_config(p)
    model = UNet(cfg)
    schedule = Schedule(p.diffusion.schedule, p.diffusion.timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    ema = EMA(model, t.ema_decay)
    generator = torch.Generator().manual_seed(p.seed)
    x0 = torch.rand(t.batch_size, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1  # images in [-1, 1]
    return _step(model, optimizer, lambda: schedule.loss(model, x0, generator), t.grad_clip,
                 after=lambda: ema.update(model, t.ema_decay))  # fmt: skip


# --- mini-imagenet: dynconv, twolayer ---------------------------------------------------------


def _mini_imagenet() -> tuple[int, int]:
    """(class count, image size) of the prepared mini-ImageNet sample: its 10 generated classes."""
    from stages.mini_imagenet import config
    from stages.mini_imagenet.sample import CLASSES

    p, _ = config.load(PARAMS)
    return len(CLASSES), p.prepare.image_size


def dynconv_train(name: str) -> Callable[[], Step]:
    def build() -> Step:
        import torch
        import torch.nn.functional as F

        from stages.dynconv import config
        from stages.dynconv.model import build as build_model
        from stages.dynconv.model import sample_masks

        p, _ = config.load(PARAMS)
        p.check_model(name)
        t, variant = p.train, p.model(name)
        n_classes, size = _mini_imagenet()
        model = build_model(name, p, n_classes)
        optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        x = torch.randn(t.batch_size, 3, size, size)
        mask = sample_masks(t.batch_size, variant.channel_sampling, torch.Generator().manual_seed(p.seed))
        x = x * mask[:, :, None, None]  # missing channels zeroed
        y = torch.randint(n_classes, (t.batch_size,))
        return _step(model, optimizer, lambda: F.cross_entropy(model(x, mask), y, label_smoothing=t.label_smoothing))

    return build


def twolayer_train(name: str) -> Callable[[], Step]:
    def build() -> Step:
        import torch
        import torch.nn.functional as F

        from stages.twolayer import config
        from stages.twolayer.model import build as build_model

        p, _ = config.load(PARAMS)
        config.validate(p, config.check_model(name))
        t, a = p.train, p.augment
        n_classes, prepared = _mini_imagenet()
        size = t.image_size or prepared
        model = build_model(name, p, n_classes, size)
        optimizer = torch.optim.AdamW(_decay_groups(model, t.weight_decay, lambda n, q: q.ndim > 1), lr=t.lr)
        x = torch.randn(t.batch_size, 3, size, size)
        y = torch.randint(n_classes, (t.batch_size,))
        return _step(model, optimizer, lambda: F.cross_entropy(model(x), y, label_smoothing=a.label_smoothing))

    return build


# --- dip-ddpm ---------------------------------------------------------------------------------


def dip_fit(method: str) -> Callable[[], Step]:
    """One iteration of `dip.fit` (input noise, forward, the summed per-image MSE, Adam) for the images that
    dip-ddpm-restore@<method> fits in one grouped batch: @dip test + validation images, @dip-ddpm the test
    images. The task trains no DDPM prior of its own: @ddpm and @dip-ddpm sample with ddpm-train's U-Net."""

    def build() -> Step:
        import torch

        from stages.dip_ddpm import config, dip

        p, _ = config.load(PARAMS)
        net, d = p.net, p.data
        groups = d.n_images + (d.val_images if method == "dip" else 0)
        size = d.image_size
        model = dip.GroupedSkipNet(net, groups)
        model.init_per_group(dip.image_seeds(p.seed, list(range(groups))))
        z = torch.rand(1, groups * net.input_channels, size, size) * 0.1
        target = torch.rand(groups, 3, size, size)  # noisy observations in [0, 1]
        optimizer = torch.optim.Adam(model.parameters(), lr=net.lr)

        def loss() -> torch.Tensor:
            zi = z + net.input_noise * torch.randn_like(z) if net.input_noise > 0 else z
            return ((model(zi) - target) ** 2).mean(dim=(1, 2, 3)).sum()

        return _step(model, optimizer, loss)

    return build


# --- vlm-caption ------------------------------------------------------------------------------


def vlm_caption_train() -> Step:
    """The tiny random Mllama with LoRA (transformers + peft: the CPU backend), one batch from the collator
    on sample scenes; the step SFTTrainer takes: outputs.loss, backward, clipping at its max_grad_norm 1.0,
    AdamW (optim adamw_torch) on the trainable parameters."""
    import logging
    import tempfile

    import torch
    from transformers.utils import logging as hf_logging

    from stages.vlm_caption import config, data, model, prepare, tiny_model

    logging.getLogger("transformers").setLevel(logging.ERROR)
    p, _ = config.load(PARAMS)
    if p.model.name != config.TINY:
        raise RuntimeError("the vlm-caption probe builds the tiny model only (vlm-caption.model.name: tiny)")
    t = p.train
    raw = data.make_sample(p.data.sample_train, 0, 0, p.data.sample_seed)["train"]
    cfg = tiny_model.tiny_config(p.model)
    processor = tiny_model.build_processor([r["caption"] for r in raw] + [p.prepare.instruction], cfg)
    prompt = processor.apply_chat_template(data.messages(p.prepare.instruction), add_generation_prompt=True)
    rows = [{"image": prepare.resize(r["image"], cfg.image_size, "sample"), "prompt": prompt,
             "text": prompt + r["caption"] + tiny_model.EOT} for r in raw[: t.batch_size]]  # fmt: skip
    hf_logging.disable_progress_bar()  # transformers' bars for saving and loading the base model
    with tempfile.TemporaryDirectory(prefix="flop-probe-vlm-") as tmp:
        tiny_model.build_model(processor, cfg, p.seed).save_pretrained(Path(tmp) / "base")
        processor.save_pretrained(Path(tmp) / "processor")
        net, processor = model.load_for_training(p, "transformers", Path(tmp) / "base", Path(tmp) / "processor",
                                                 torch.device("cpu"))  # fmt: skip
    hf_logging.enable_progress_bar()
    batch = model.CaptionCollator(processor)(rows)
    trainable = [q for q in net.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)
    return _step(net, optimizer, lambda: net(**batch).loss, clip=1.0)


PROBES: dict[str, Callable[[], Step]] = {
    "pokemon-classifier": pokemon_classifier,
    "pokemon-train": pokemon_train,
    "news-train": news_train,
    **{f"mygo-train@{name}": mygo_train(name) for name in _matrix("mygo-train")},
    **{f"coco-caption-train@{name}": coco_caption_train(name) for name in _matrix("coco-caption-train")},
    "vit-train": vit_train,
    "ddpm-train": ddpm_train,
    **{f"dynconv-train@{name}": dynconv_train(name) for name in _matrix("dynconv-train")},
    **{f"twolayer-train@{name}": twolayer_train(name) for name in _matrix("twolayer-train")},
    "dip-ddpm-restore@dip": dip_fit("dip"),
    "dip-ddpm-restore@dip-ddpm": dip_fit("dip-ddpm"),
    "vlm-caption-train": vlm_caption_train,
}
