"""coco-caption-predict@<config>: captions for every sampled val image (and a few train images), with
sample captions drawn under their images (plots/coco-caption/<config>_samples.png).

Greedy decoding up to max_length tokens (the course), or beam search (`coco-caption.predict.strategy: beam`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from stages.coco_caption import config
from stages.coco_caption.data import decode, load_prepared
from stages.coco_caption.model import load_model
from stages.common.cli import main
from stages.common.io import is_inside, write_json
from stages.common.runtime import setup, thread_count

STAGE = "coco-caption-predict"


def generate(model, feats: np.ndarray, p: config.CocoCaptionParams, idx_to_word: list[str], device) -> list[str]:
    from tqdm import tqdm

    x = torch.as_tensor(feats, dtype=torch.float32, device=device)
    if p.predict.strategy == "beam":
        return [decode(model.beam_search(f, p.predict.beam_size, p.model.max_length), idx_to_word)
                for f in tqdm(x, desc="beam search", unit="image", leave=False, disable=None)]  # fmt: skip
    out = []
    for i in tqdm(range(0, len(x), 256), desc="sampling", unit="batch", leave=False, disable=None):
        out += [decode(row, idx_to_word) for row in model.sample(x[i : i + 256], p.model.max_length).tolist()]
    return out


def run(p: config.CocoCaptionParams, common: config.CommonParams, paths: config.Paths, name: str) -> dict:
    p.config(name)
    device = setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels)
    arrays, meta = load_prepared(paths.prepared)
    model = load_model(paths.model(name), device)
    words = meta["idx_to_word"]
    result: dict = {"config": name, "strategy": p.predict.strategy}
    for split in ("train", "val"):
        images, first = np.unique(arrays[f"{split}_image_idxs"], return_index=True)
        if split == "train":
            images, first = images[: p.predict.samples], first[: p.predict.samples]
        captions = generate(model, arrays[f"{split}_features"][first], p, words, device)
        result[split] = [
            {
                "image": int(img),
                "url": meta[f"{split}_urls"][int(img)],
                "caption": cap,
                "ground_truth": decode(arrays[f"{split}_captions"][j], words),
            }
            for img, j, cap in zip(images, first, captions, strict=True)
        ]
    write_json(paths.predictions(name), result)
    draw_samples(paths.plots / f"{name}_samples.png", result, paths.raw, p.predict.samples, name)
    print(f"coco-caption-predict {name}: {len(result['val'])} val images captioned -> {paths.predictions(name)}")
    return result


def draw_samples(path: Path, result: dict, raw: Path, n: int, name: str) -> None:
    """A few train and val images with the generated caption (and one ground truth) under each;
    an image that is not a local file inside `raw` is shown as its URL."""
    from stages.common.images import open_rgb
    from stages.common.plots import _pyplot, _save

    rows = [("train", r) for r in result["train"][:n]] + [("val", r) for r in result["val"][:n]]
    plt = _pyplot()
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 8.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (split, r) in enumerate(rows):
        ax = axes[0 if split == "train" else 1][k % n]
        file = raw / r["url"]
        if not r["url"].startswith(("http:", "https:")) and is_inside(file, raw, raw) and file.is_file():
            ax.imshow(np.asarray(open_rgb(file, file)), interpolation="nearest")
        else:
            ax.text(0.5, 0.5, r["url"], ha="center", va="center", wrap=True, fontsize=6)
        ax.set_title(f"{split}", fontsize=8)
        ax.text(0.5, -0.04, f"gen: {r['caption']}\ngt: {r['ground_truth']}", transform=ax.transAxes,
                ha="center", va="top", fontsize=6.5, wrap=True)  # fmt: skip
    fig.suptitle(f"coco-caption {name}: generated (gen) and ground-truth (gt) captions")
    _save(fig, path)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths(), *sys.argv[1:]))
