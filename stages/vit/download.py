"""vit-download: CIFAR-10 (or the generated sample) as data/vit/raw/{train,test}.npz + classes.json, validated.

Sources: `sample` (10 classes of generated 32×32 patterns), `dir:<folder>` (train/<class>/*.jpg +
test/<class>/*.jpg, e.g. ../shared/data/cifar10, or the official cifar-10-batches-py pickles),
`torchvision` (torchvision.datasets.CIFAR10 download; needs internet).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.cli import main
from stages.common.io import DataError, atomic_path
from stages.common.sources import parse_source, require_dir
from stages.vit import config, data


def run(p: config.VitParams, common: config.CommonParams, paths: config.Paths) -> Path:
    source = parse_source(p.data.source, ("sample", "dir", "torchvision"), key="vit.data.source")
    d = p.data
    if source.kind == "sample":
        train = data.make_sample(d.sample_train, d.sample_seed)
        test = data.make_sample(d.sample_test, d.sample_seed + 1)
        classes = data.SAMPLE_CLASSES
    elif source.kind == "dir":
        loaded = data.load_dir(require_dir(source.value))
        train, test, classes = loaded["train"], loaded["test"], loaded["classes"]
    else:
        train, test, classes = _torchvision(paths.downloads)
    if len(classes) < 2:
        raise DataError(f"{p.data.source}: needs at least 2 classes, found {classes}")
    train = data.limit_per_class(*train, d.max_train_per_class)
    test = data.limit_per_class(*test, d.max_test_per_class)
    with atomic_path(paths.raw) as out:
        out.mkdir()
        data.write_split(out, "train", *train)
        data.write_split(out, "test", *test)
        data.write_classes(out, classes)
        for split in ("train", "test"):
            data.read_split(out, split, len(classes))  # what we wrote must read back
    print(f"vit-download: train {len(train[1])}, test {len(test[1])}, {len(classes)} classes -> {paths.raw}")
    return paths.raw


def _torchvision(root: Path):
    try:
        from torchvision.datasets import CIFAR10

        tr, te = CIFAR10(root, train=True, download=True), CIFAR10(root, train=False, download=True)
    except Exception as err:  # noqa: BLE001 - network and archive errors alike
        raise DataError(f"torchvision CIFAR-10 download into {root} failed ({err})") from None
    as_np = lambda ds: (np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64))  # noqa: E731
    return as_np(tr), as_np(te), list(tr.classes)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
