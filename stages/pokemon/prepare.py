"""pokemon-prepare: the course's split by line order — train 632, dev 80, test 80 given as 240-token prefixes."""

from __future__ import annotations

from pathlib import Path

from stages.common.cli import main
from stages.common.io import atomic_path
from stages.pokemon import config
from stages.pokemon.data import PREFIX_LEN, read_colormap, read_pixels, split, write_colormap, write_pixels


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> Path:
    palette = read_colormap(paths.raw / "colormap.txt")
    parts = split(read_pixels(paths.raw / "pixel_color.txt", n_colors=len(palette)))
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        write_pixels(out / "train.txt", parts["train"])
        write_pixels(out / "dev.txt", parts["dev"])
        # The course hides the rest of each test image; so do we.
        write_pixels(out / "test_prefix.txt", parts["test"][:, :PREFIX_LEN])
        write_colormap(out / "colormap.txt", palette)
    print(f"pokemon-prepare: {', '.join(f'{k} {len(v)}' for k, v in parts.items())} -> {paths.prepared}")
    return paths.prepared


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
