"""mini-imagenet-prepare: decode every listed image once, resize to `mini-imagenet.prepare.image_size`.

Writes data/mini-imagenet/prepared/{train,val,test}.npz (`images` uint8 N×S×S×3, `labels` int64, in
list-file order) and classes.json ({"image_size": S, "classes": [names in label order]}).
"""

from __future__ import annotations

import json

from stages.common.cli import main
from stages.common.io import atomic_path
from stages.mini_imagenet import config, data

STAGE = "mini-imagenet-prepare"


def run(p: config.MiniImagenetParams, common: config.CommonParams, paths: config.Paths) -> dict:
    p.check_prepare()
    size = p.prepare.image_size
    n_classes = data.count_classes(paths.raw, p.data.num_classes)
    items = {}
    for split in config.SPLITS:
        list_file = data.find_list(paths.raw, split) or paths.raw / f"{split}.txt"
        items[split] = data.read_list(list_file, n_classes)
    classes = data.class_names(paths.raw, items["train"], n_classes)
    counts = {}
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        for split in config.SPLITS:
            images, labels = data.load_images(items[split], size)
            data.write_npz(out / f"{split}.npz", images=images, labels=labels)
            counts[split] = len(labels)
        meta = {"image_size": size, "classes": classes}
        (out / "classes.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for split in config.SPLITS:
            data.load_split(out, split)  # what we wrote must read back
    print(f"{STAGE}: {counts} at {size}×{size}, {len(classes)} classes -> {paths.prepared}")
    return {"image_size": size, "num_classes": len(classes), **counts}


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
