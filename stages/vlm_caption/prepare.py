"""vlm-caption-prepare: chat-format examples (instruction + image -> caption) with the model's chat template,
images resized per the processor, and the processor itself, into data/vlm-caption/prepared.

For `model.name: tiny` the processor is built here (a BPE tokenizer trained on the training captions and the
instruction, deterministic); otherwise it is the model's own (`AutoProcessor`, from the Hub or a local folder).
Writes {train,valid,test}.parquet with `image` (PNG bytes, longest side <= the processor's tile size),
`key` (digest of the original image: rows with the same key share references), `messages` (JSON),
`prompt` (the chat template with the generation prompt) and `text` (prompt + caption + <|eot_id|>, train/valid).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stages.common.cli import main
from stages.common.io import DataError, atomic_path
from stages.vlm_caption import config, data, tiny_model

SPLITS = ("train", "valid", "test")


def make_processor(p: config.VlmCaptionParams, train_captions: list[str]) -> Any:
    if p.model.name == config.TINY:
        return tiny_model.build_processor(train_captions + [p.prepare.instruction], tiny_model.tiny_config(p.model))
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(p.model.name)
    except OSError as err:
        raise DataError(f"vlm-caption.model.name {p.model.name!r}: cannot load its processor ({err})") from None


def tile_size(processor: Any) -> int:
    size = processor.image_processor.size
    return int(size["height"] if isinstance(size, dict) else size.height)


def resize(image_data: bytes, side: int, where: str) -> bytes:
    """Longest side down to `side` (aspect kept): the processor would do it per step; doing it once is cheaper."""
    from PIL import Image

    image = data.decode_image(image_data, where)
    if max(image.size) > side:
        image.thumbnail((side, side), Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def run(p: config.VlmCaptionParams, common: config.CommonParams, paths: config.Paths) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = {split: data.read_split(paths.raw, split) for split in SPLITS}
    if p.prepare.max_train_rows > 0:
        raw["train"] = raw["train"][: p.prepare.max_train_rows]
    processor = make_processor(p, [r["caption"] for r in raw["train"]])
    side = tile_size(processor)
    prompt = processor.apply_chat_template(data.messages(p.prepare.instruction), add_generation_prompt=True)
    cache: dict[str, bytes] = {}  # Flickr rows repeat each image five times
    with atomic_path(paths.prepared) as out:
        out.mkdir()
        processor.save_pretrained(out / "processor")
        for split in SPLITS:
            rows = []
            for i, r in enumerate(tqdm(raw[split], desc=f"prepare {split}", leave=False)):
                key = data.image_key(r["image"])
                if key not in cache:
                    cache[key] = resize(r["image"], side, f"{paths.raw / data.FILES[split]} row {i}")
                row = {"image": cache[key], "key": key, "prompt": prompt}
                if split == "test":
                    row["idx"] = r["idx"]
                    row["messages"] = json.dumps(data.messages(p.prepare.instruction))
                else:
                    row["caption"] = r["caption"]
                    row["messages"] = json.dumps(data.messages(p.prepare.instruction, r["caption"]))
                    row["text"] = prompt + r["caption"] + tiny_model.EOT
                rows.append(row)
            pq.write_table(pa.Table.from_pylist(rows), out / f"{split}.parquet")
    counts = ", ".join(f"{s} {len(raw[s])}" for s in SPLITS)
    print(f"vlm-caption-prepare: {counts} examples, images <= {side} px, prompt {prompt!r} -> {paths.prepared}")
    return paths.prepared


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
