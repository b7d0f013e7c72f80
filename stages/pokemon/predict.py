"""pokemon-predict: complete every test prefix (and every dev prefix, for scoring) from 240 to 400 tokens."""

from __future__ import annotations

from pathlib import Path

from stages.common.cli import main
from stages.common.io import atomic_path
from stages.common.runtime import setup
from stages.pokemon import config
from stages.pokemon.data import PREFIX_LEN, load_prepared, write_pixels
from stages.pokemon.model import complete, load_members


def run(p: config.PokemonParams, common: config.CommonParams, paths: config.Paths) -> Path:
    device = setup(p.predict.seed, common.device, common.threads, common.kernels)
    data = load_prepared(paths.prepared)
    members = load_members(paths.model, device)
    with atomic_path(paths.predictions) as out:
        out.mkdir()
        write_pixels(out / "test.txt", complete(members, data["test_prefix"], p.predict, device))
        write_pixels(out / "dev.txt", complete(members, data["dev"][:, :PREFIX_LEN], p.predict, device))
    print(
        f"pokemon-predict: {len(data['test_prefix'])} test and {len(data['dev'])} dev completions -> {paths.predictions}"
    )
    return paths.predictions


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
