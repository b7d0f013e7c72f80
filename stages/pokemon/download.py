"""pokemon-download: put `pixel_color.txt` and `colormap.txt` into data/pokemon/raw, validated.

Sources: `sample` (sprites generated here), `dir:<folder>` (the course's files),
`url:<zip>` (+ `pokemon.data.sha256`), `hf:<dataset>` (the course's Hugging Face datasets).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, atomic_path
from stages.common.sources import fetch_url, parse_source, require_dir
from stages.pokemon import config, sprites
from stages.pokemon.data import N_IMAGES, PREFIX_LEN, SEQ_LEN, read_colormap, read_pixels, write_colormap, write_pixels

FILES = ("pixel_color.txt", "colormap.txt")


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> Path:
    source = parse_source(p.data.source, ("sample", "dir", "url", "hf"), key="pokemon.data.source")
    with atomic_path(paths.raw) as out:
        out.mkdir()
        if source.kind == "sample":
            pixels, palette = sprites.generate(N_IMAGES, p.data.sample_seed)
            write_pixels(out / FILES[0], pixels)
            write_colormap(out / FILES[1], palette)
        elif source.kind == "hf":
            pixels, palette = from_hub(source.value, p.data.hf_colormap)
            write_pixels(out / FILES[0], pixels)
            write_colormap(out / FILES[1], palette)
        else:
            folder = (
                require_dir(source.value)
                if source.kind == "dir"
                else fetch_url(source.value, p.data.sha256, paths.downloads)
            )
            found = [find_file(folder, name) for name in FILES]
            validate(*found)  # the user's own files, so an error names them (not the copy)
            for src, name in zip(found, FILES, strict=True):
                shutil.copyfile(src, out / name)
        validate(out / FILES[0], out / FILES[1])  # what we wrote must read back
    print(f"pokemon-download: {source.kind} -> {paths.raw}")
    return paths.raw


def validate(pixel_color: Path, colormap: Path) -> None:
    palette = read_colormap(colormap)
    read_pixels(pixel_color, n_colors=len(palette))


def find_file(folder: Path, name: str) -> Path:
    """`name` directly in `folder`, or in exactly one sub-folder (archives often add a top folder)."""
    if (folder / name).is_file():
        return folder / name
    found = sorted(folder.rglob(name))
    if len(found) != 1:
        where = "found in several places" if found else "not found"
        raise DataError(f"{folder}: {name} {where}; expected pixel_color.txt and colormap.txt")
    return found[0]


def from_hub(dataset: str, colormap_dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The course's datasets: splits train/dev/test with column `pixel_color`; palette column `color`."""
    from datasets import load_dataset

    images = load_dataset(dataset)
    rows = []
    for split in ("train", "dev", "test"):
        if split not in images:
            raise DataError(f"hf:{dataset}: split '{split}' missing (has {', '.join(images)})")
        for row in images[split]["pixel_color"]:
            if split == "test" and len(row) == PREFIX_LEN:  # the test split only gives the prefix
                row = list(row) + [0] * (SEQ_LEN - PREFIX_LEN)
            rows.append(row)
    lengths = {len(r) for r in rows}
    if lengths != {SEQ_LEN}:
        raise DataError(f"hf:{dataset}: every pixel_color must have {SEQ_LEN} values, found lengths {sorted(lengths)}")
    colors = load_dataset(colormap_dataset)["train"]["color"]
    return np.asarray(rows, dtype=np.int64), np.asarray(colors, dtype=np.int64)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
