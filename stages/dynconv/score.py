"""Score any `path label` list file (the course layout: paths relative to the list's folder) with the trained
dynconv models, for every channel subset, and print the subset × model table.

    python -m stages.dynconv.score ../shared/data/mini_imagenet/test.txt
    python -m stages.dynconv.score my_list.txt --size 84      # another input resolution

Not a DVC stage: it reads models/dynconv/{dynamic,naive}.pt and writes nothing. Accuracy is the mean over
the saved runs, ± their standard deviation when there are several.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from stages.common.cli import main
from stages.common.params import ParamsError
from stages.common.runtime import setup
from stages.dynconv import config


def score(list_file: Path, paths: config.Paths, size: int | None = None, device: str = "cpu", threads: int = 0,
          batch_size: int = 100) -> dict:  # fmt: skip
    """{model: {subset: [accuracy of each run]}} on the images of `list_file`."""
    import torch

    from stages.dynconv.model import load, predict
    from stages.mini_imagenet.data import load_images, read_list, to_tensor

    dev = setup(0, device, threads)
    loaded = {name: load(paths.model(name), dev) for name in config.MODELS}
    classes = loaded["dynamic"][1]["classes"]
    size = size or loaded["dynamic"][1]["image_size"]
    if not 8 <= size <= 1024:
        raise ParamsError(f"--size is {size}; expected 8..1024")
    items = read_list(Path(list_file), len(classes))
    x_u8, y = load_images(items, size)
    x, y = to_tensor(x_u8), torch.as_tensor(y)
    return {
        name: {s: [float((predict(m, x, s, batch_size, dev) == y).float().mean()) for m in models]
               for s in config.SUBSETS}
        for name, (models, _) in loaded.items()
    } | {"_images": len(y), "_size": size}  # fmt: skip


def table(result: dict) -> str:
    head = "| channels | " + " | ".join(config.MODELS) + " |"
    lines = [head, "|---" * (len(config.MODELS) + 1) + "|"]
    for s in config.SUBSETS:
        cells = []
        for m in config.MODELS:
            runs = result[m][s]
            cell = f"{statistics.fmean(runs):.3f}"
            if len(runs) > 1:
                cell += f" ± {statistics.pstdev(runs):.3f}"
            cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m stages.dynconv.score", description=__doc__.splitlines()[0])
    parser.add_argument("list_file", type=Path, help="a '<path> <int label>' list, paths relative to its folder")
    parser.add_argument("--size", type=int, default=None, help="input resolution (default: the training size)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repo holding models/dynconv")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    result = score(args.list_file, config.Paths(args.root), args.size, args.device, args.threads)
    print(f"{args.list_file}: {result['_images']} images at {result['_size']} px, test accuracy per channel subset")
    print(table(result))
    return result


if __name__ == "__main__":
    main(cli)
