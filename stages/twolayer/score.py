"""Score any course list file with both trained models and print a table.

    python -m stages.twolayer.score <list file> [<list file> ...] [--root <repo>]

A list file is the course's format (`<image path relative to the file's folder> <int label>` per line,
e.g. ../shared/data/mini_imagenet/test.txt). Images are decoded and resized exactly as
mini-imagenet-prepare does, then to the models' training size. Needs models/twolayer/{twolayer,resnet34}.pt
and data/mini-imagenet/prepared/classes.json (the class count and order) under `--root` (default: the current
folder), read with the params.yaml there. A bad file or line: one `error:` line naming it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.common.cli import main
from stages.common.io import DataError, read_json
from stages.mini_imagenet.data import load_classes, load_images, read_list
from stages.twolayer import config
from stages.twolayer.images import predict, resize
from stages.twolayer.model import load_model


def run(p: config.TwolayerParams, common: config.CommonParams, paths: config.Paths, *list_files: str) -> list[dict]:
    from stages.common.runtime import setup, thread_count

    if not list_files:
        raise DataError("usage: python -m stages.twolayer.score <list file> [<list file> ...]")
    device = setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels)
    classes = load_classes(paths.data)
    prepared_size = read_json(paths.data / "classes.json").get("image_size")
    if not isinstance(prepared_size, int):
        raise DataError(f"{paths.data / 'classes.json'}: no integer image_size")
    models = {name: load_model(paths.model(name)) for name in config.MODELS}
    for name, (_, saved) in models.items():
        if saved["classes"] != classes:
            raise DataError(f"{paths.model(name)}: trained on other classes than {paths.data / 'classes.json'}")
    rows = []
    for list_file in list_files:
        items = read_list(Path(list_file), len(classes))
        images, labels = load_images(items, prepared_size)
        accuracy = {}
        for name, (model, saved) in models.items():
            pred = predict(model.to(device), resize(images, saved["image_size"]), device).argmax(-1).numpy()
            accuracy[name] = float((pred == labels).mean())
        ratio = accuracy["twolayer"] / accuracy["resnet34"] if accuracy["resnet34"] > 0 else float("nan")
        rows.append({"list": str(list_file), "images": len(labels), **accuracy, "ratio": ratio})
    print("| list file | images | twolayer | resnet34 | ratio |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['list']} | {r['images']} | {r['twolayer']:.4f} | {r['resnet34']:.4f} | {r['ratio']:.3f} |")
    return rows


def cli(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m stages.twolayer.score", description=__doc__.splitlines()[0])
    parser.add_argument("list_files", nargs="*", help="'<path> <int label>' lists, paths relative to their folder")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="the repo holding params.yaml, models/twolayer and data/mini-imagenet/prepared")  # fmt: skip
    args = parser.parse_args(argv)
    params = args.root / "params.yaml"
    if not params.is_file():
        raise DataError(f"{params}: file not found; score reads the params, models and prepared data of the repo "
                        f"it is given with --root (now: {args.root}), by default the current folder")  # fmt: skip
    return run(*config.load(params), config.Paths(args.root), *args.list_files)


if __name__ == "__main__":
    main(cli)
