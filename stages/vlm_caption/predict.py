"""vlm-caption-predict: batched generation for every test image and every distinct validation image.

Greedy (`predict.num_beams: 1`) or beam search, up to `predict.max_new_tokens`. Writes
submissions/vlm-caption/submission.json (`[{"idx": ..., "output": ...}]`, checked: one entry per test idx,
strings, valid JSON) and data/vlm-caption/predictions.json (validation captions for evaluate and the report).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stages.common.cli import main
from stages.common.io import read_json, write_json, write_text
from stages.common.runtime import setup, thread_count
from stages.vlm_caption import config, data, model

STAGE = "vlm-caption-predict"


def generate(net: Any, processor: Any, rows: list[dict], p: config.PredictParams, device: Any, desc: str) -> list[str]:
    import torch

    processor.tokenizer.padding_side = "left"  # every prompt must end where generation starts
    out: list[str] = []
    for i in tqdm(range(0, len(rows), p.batch_size), desc=desc):
        chunk = rows[i : i + p.batch_size]
        batch = processor(
            images=[[model.pil(r["image"])] for r in chunk],
            text=[r["prompt"] for r in chunk],
            padding=True,
            add_special_tokens=False,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            ids = net.generate(
                **batch,
                max_new_tokens=p.max_new_tokens,
                num_beams=p.num_beams,
                no_repeat_ngram_size=p.no_repeat_ngram_size,
                repetition_penalty=p.repetition_penalty,
                do_sample=False,
            )
        texts = processor.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        out += [" ".join(t.split()) for t in texts]
    return out


def distinct(rows: list[dict]) -> list[dict]:
    """One row per image key (validation repeats an image once per reference caption)."""
    seen: dict[str, dict] = {}
    for r in rows:
        seen.setdefault(r["key"], r)
    return list(seen.values())


def run(p: config.VlmCaptionParams, common: config.CommonParams, paths: config.Paths) -> list[dict]:
    device = setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels)
    info = read_json(paths.model / "info.json")
    backend = info["backend"]
    if backend == "unsloth":
        backend, _ = model.choose_backend("auto", device.type == "cuda")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    base: str | Path = paths.model / "base" if info["tiny"] else info["base"]
    net, processor = model.load_for_inference(paths.model, base, backend, device, p.model.load_in_4bit)
    test = data.load_split(paths.prepared, "test")
    valid = distinct(data.load_split(paths.prepared, "valid"))
    test_out = generate(net, processor, test, p.predict, device, "test")
    valid_out = generate(net, processor, valid, p.predict, device, "valid")
    submission = [{"idx": r["idx"], "output": o} for r, o in zip(test, test_out, strict=True)]
    data.check_submission(submission, [r["idx"] for r in test], paths.submission)
    text = json.dumps(submission, indent=1, ensure_ascii=False) + "\n"
    json.loads(text)  # what we hand in must parse
    write_json(
        paths.predictions, {"valid": [{"key": r["key"], "output": o} for r, o in zip(valid, valid_out, strict=True)]}
    )
    write_text(paths.submission, text)
    print(f"vlm-caption-predict: {len(submission)} test captions -> {paths.submission}; e.g. {test_out[:2]}")
    return submission


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
