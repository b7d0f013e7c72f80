"""coco-caption-download: the captioning set in the assignment's h5 + json layout, validated, into data/coco-caption/raw.

Sources: `sample` (scenes of one coloured shape, generated here), `dir:<coco_captioning folder>` (the
assignment's files, copied after their keys, shapes and word ids are checked), `dir:<Flickr8k-style folder>`
(images/ + Flickr8k.token*.txt, converted; features = PCA of downscaled pixels, see data.py).
"""

from __future__ import annotations

from pathlib import Path

from stages.coco_caption import config, data
from stages.common.cli import main
from stages.common.io import atomic_path
from stages.common.sources import parse_source, require_dir


def run(p: config.CocoCaptionParams, common: config.CommonParams, paths: config.Paths) -> Path:
    source = parse_source(p.data.source, ("sample", "dir"), key="coco-caption.data.source")
    d = p.data
    with atomic_path(paths.raw) as out:
        if source.kind == "sample":
            data.make_sample(out, d.sample_images, d.sample_seed, d.feature_dim)
        else:
            folder = require_dir(source.value)
            if (folder / data.FILES["captions"]).is_file():
                data.load_layout(folder)  # validate before copying
                data.copy_layout(folder, out)
            elif data.is_flickr(folder):
                data.convert_flickr(folder, out, d.flickr_image_size, d.flickr_min_count, d.feature_dim)
            else:
                from stages.common.io import DataError

                raise DataError(
                    f"{folder}: neither the coco_captioning layout ({data.FILES['captions']}) "
                    "nor a Flickr8k-style folder (images/ + *.token*.txt)"
                )
        loaded = data.load_layout(out)  # what we wrote must read back
    print(
        f"coco-caption-download: train {len(loaded['train_captions'])} captions / {len(loaded['train_features'])} images,"
        f" val {len(loaded['val_captions'])} / {len(loaded['val_features'])}, vocab {len(loaded['idx_to_word'])}"
        f" -> {paths.raw}"
    )
    return paths.raw


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
