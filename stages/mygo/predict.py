"""mygo-predict: every ensemble member on valid and test, under each TTA view; the ensemble's labels.

data/mygo/predictions/
  <name>_valid.npy, <name>_test.npy   float32 logits (V, N, C); view 0 is `identity` (the single-model score)
  meta.json                           models, views, ensemble method, classes
  valid.csv, test.csv                 id, label (index): the ensemble of the TTA-averaged members
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from stages.common.cli import main
from stages.common.io import DataError, atomic_path, write_csv
from stages.common.runtime import resolve_device, set_kernels, set_threads
from stages.mygo import augment, config, ensemble
from stages.mygo.data import load_prepared
from stages.mygo.model import load


def run(p: config.MygoParams, common: config.CommonParams, paths: config.Paths) -> Path:
    set_kernels(common.kernels)
    set_threads(common.threads)
    device = resolve_device(common.device)
    views = augment.check_views(p.predict.tta)
    data = load_prepared(paths.prepared)
    index = data["index"]
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for name in p.ensemble:
        model, saved = load(paths.model(name), device)
        if saved["classes"] != data["classes"] or saved["image_size"] != index["image_size"]:
            raise DataError(
                f"{paths.model(name)}: trained on other classes or image size than {paths.prepared}; re-run mygo-train"
            )
        mean, std = torch.tensor(saved["mean"]), torch.tensor(saved["std"])
        outputs[name] = {
            split: logits_for_views(model, data[f"{split}_images"], views, mean, std, device, p.predict.batch_size)
            for split in ("valid", "test")
        }
        print(f"mygo-predict: {name}: valid accuracy {ensemble.accuracy(outputs[name]['valid'][0].argmax(-1), data['valid_labels']):.4f} "
              f"(1 view), {ensemble.accuracy(ensemble.tta(outputs[name]['valid']).argmax(-1), data['valid_labels']):.4f} "
              f"({len(views)} views)")  # fmt: skip
    valid_ids = [Path(f).stem for f in index["valid_files"]]
    with atomic_path(paths.predictions) as out:
        out.mkdir()
        for name, splits in outputs.items():
            for split, logits in splits.items():
                np.save(out / f"{name}_{split}.npy", logits)
        for split, ids in (("valid", valid_ids), ("test", index["test_ids"])):
            pred = ensemble.combine([ensemble.tta(o[split]) for o in outputs.values()], p.predict.ensemble)
            write_csv(
                out / f"{split}.csv",
                [{"id": i, "label": int(k)} for i, k in zip(ids, pred, strict=False)],
                ["id", "label"],
            )
        meta = {"models": list(p.ensemble), "views": views, "ensemble": p.predict.ensemble, "classes": data["classes"]}
        (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"mygo-predict: {len(p.ensemble)} model(s) × {len(views)} view(s) -> {paths.predictions}")
    return paths.predictions


@torch.inference_mode()
def logits_for_views(model, images: np.ndarray, views: list[str], mean, std, device, batch_size: int) -> np.ndarray:
    """uint8 (N, S, S, 3) -> float32 logits (V, N, C)."""
    x = augment.eval_transform(images.shape[1], mean, std)(torch.from_numpy(images).permute(0, 3, 1, 2))
    out = []
    for name in views:
        chunks = [model(augment.view(xb, name).to(device)).float().cpu() for xb in x.split(max(1, batch_size))]
        out.append(torch.cat(chunks).numpy())
    return np.stack(out).astype(np.float32)


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
