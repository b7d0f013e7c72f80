"""vlm-caption-download: the course's four caption files, validated, into data/vlm-caption/raw.

Sources: `sample` (rendered scenes whose captions follow from what is drawn), `dir:<folder>` with the course's
train_data.parquet / valid_data.parquet / test_data.parquet / sample_submission.json (copied once every row is
checked), `dir:<Flickr8k-style folder>` (images/ + *.token*.txt, converted), `hf:<dataset>` (needs internet).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from stages.common.cli import main
from stages.common.io import DataError, atomic_path
from stages.common.sources import parse_source, require_dir
from stages.vlm_caption import config, data


def run(p: config.VlmCaptionParams, common: config.CommonParams, paths: config.Paths) -> Path:
    source = parse_source(p.data.source, ("sample", "dir", "hf"), key="vlm-caption.data.source")
    d = p.data
    with atomic_path(paths.raw) as out:
        if source.kind == "sample":
            data.write_layout(out, data.make_sample(d.sample_train, d.sample_valid, d.sample_test, d.sample_seed))
        elif source.kind == "hf":
            data.write_layout(out, data.from_hub(source.value))
        else:
            folder = require_dir(source.value)
            if (folder / data.FILES["train"]).is_file():
                data.load_layout(folder)  # validate every row before copying anything
                out.mkdir()
                for name in data.FILES.values():
                    shutil.copy2(folder / name, out / name)
            elif data.is_flickr(folder):
                data.write_layout(out, data.convert_flickr(folder))
            else:
                raise DataError(
                    f"{folder}: neither the course's files ({', '.join(data.FILES.values())}) "
                    "nor a Flickr8k-style folder (images/ + *.token*.txt)"
                )
        loaded = data.load_layout(out)  # what we wrote must read back
    counts = ", ".join(f"{s} {len(rows)}" for s, rows in loaded.items())
    print(f"vlm-caption-download: {counts} rows -> {paths.raw}")
    return paths.raw


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
