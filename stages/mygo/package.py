"""mygo-package: submissions/mygo/submission.csv (checked against the test folder) and reports/mygo.md.

The submission has one row per test image: `id` (file name without extension)
and `label` (class index, or name with label_format: name); column names are params.
"""

from __future__ import annotations

import csv
import dataclasses
import io

from stages.common.cli import main
from stages.common.headlines import detail_path, spread_section
from stages.common.io import DataError, read_json, write_text
from stages.mygo import config
from stages.mygo.data import list_images, read_predictions


def run(p: config.MygoParams, common: config.CommonParams, paths: config.Paths) -> str:
    s = p.submission
    classes = read_json(paths.raw / "classes.json")
    test_ids = [f.stem for f in list_images(paths.raw / "test")] if (paths.raw / "test").is_dir() else []
    pred_ids = read_ids(paths.predictions / "test.csv")
    pred = read_predictions(paths.predictions / "test.csv", len(pred_ids))
    rows = [(i, int(k) if s.label_format == "index" else classes[int(k)]) for i, k in zip(pred_ids, pred, strict=False)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([s.id_column, s.label_column])
    writer.writerows(rows)
    text = out.getvalue()
    check_submission(text, test_ids, classes, s)
    write_text(paths.submission, text)
    write_text(paths.report, report(p, paths) + spread_section(config.TASK, paths.root))
    print(f"mygo-package: {len(rows)} rows -> {paths.submission}; report -> {paths.report}")
    return text


def read_ids(path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: not found; re-run mygo-predict")
    with path.open(newline="", encoding="utf-8") as f:
        return [row["id"] for row in csv.DictReader(f)]


def check_submission(text: str, test_ids: list[str], classes: list[str], s: config.SubmissionParams) -> None:
    """Every test image exactly once, the header from params, every label in the class list."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != [s.id_column, s.label_column]:
        raise DataError(f"submission: header must be {s.id_column},{s.label_column}")
    ids = [r[0] for r in rows[1:]]
    if len(set(ids)) != len(ids):
        raise DataError("submission: an id appears more than once")
    if not test_ids:
        raise DataError("submission: the test folder has no images")
    if set(ids) != set(test_ids):
        missing, extra = sorted(set(test_ids) - set(ids)), sorted(set(ids) - set(test_ids))
        raise DataError(f"submission: ids do not match the test folder (missing {missing[:3]}, unexpected {extra[:3]})")
    allowed = {str(i) for i in range(len(classes))} if s.label_format == "index" else set(classes)
    bad = [r for r in rows[1:] if len(r) != 2 or r[1] not in allowed]
    if bad:
        raise DataError(f"submission: row {bad[0]} has a label outside the {len(classes)} classes")


def report(p: config.MygoParams, paths: config.Paths) -> str:
    m = read_json(detail_path(paths.root, config.TASK))
    names = list(m["models"])
    train = {n: read_json(paths.metrics / f"mygo_train_{n}.json") for n in names}

    def passes(acc: float) -> str:
        return " ".join(f"{'✔' if acc >= t else '✘'}{t:.2f}" for t in config.BASELINES.values())

    rows = []
    for n in names:
        t, r = train[n], m["models"][n]
        desc = f"{t['arch']}, {t['parameters']:,} params, best epoch {t['best_epoch']}/{t['epochs_run']}"
        rows.append(f"| {n} ({desc}) | single view | {r['single']:.3f} | {passes(r['single'])} |")
        rows.append(f"| {n} | TTA ({len(m['views'])} views) | {r['tta']:.3f} | {passes(r['tta'])} |")
    rows.append(f"| ensemble of {len(names)} ({m['ensemble_method']}) | single view | {m['ensemble_single_view']:.3f} | "
                f"{passes(m['ensemble_single_view'])} |")  # fmt: skip
    rows.append(
        f"| **ensemble of {len(names)} ({m['ensemble_method']})** | **TTA** | **{m['accuracy']:.3f}** | {passes(m['accuracy'])} |"
    )
    best = max(m["best_single_accuracy"], m["best_tta_accuracy"])
    if len(names) == 1:
        verdict = "There is one model, so there is no ensemble to compare."
    elif m["ensemble_gain"] > 0:
        verdict = f"The ensemble beats its best member ({best:.3f}) by {m['ensemble_gain']:+.3f}."
    else:
        verdict = (f"The ensemble does **not** beat its best member ({best:.3f}; difference {m['ensemble_gain']:+.3f}). "
                   "On this validation set the members make the same mistakes, or one member is much weaker than the rest.")  # fmt: skip
    per_class = "\n".join(f"| {c} | {a:.3f} |" for c, a in m["per_class_accuracy"].items())
    settings = "\n".join(
        f"- `{k}`: {dataclasses.asdict(getattr(p, k))}" for k in ("data", "prepare", "train", "predict")
    )
    members = "\n".join(f"- `{n}`: {dataclasses.asdict(p.model(n))}" for n in names)
    return f"""# mygo — image classification with CNNs, augmentation, TTA and ensembles

Generated by `mygo-package` from `reports/mygo_detail.json` and `metrics/mygo_train_*.json`; every number is one the pipeline measured
on the validation set ({m["n_valid"]} images). Course baselines (public): {", ".join(f"{k} {v}" for k, v in config.BASELINES.items())};
validation accuracy stands in for the hidden test score.

## Settings
{settings}

Ensemble members:
{members}

## Validation accuracy and baselines passed
| configuration | views | accuracy | baselines (✔ passed) |
|---|---|---|---|
{chr(10).join(rows)}

{verdict} TTA views: {", ".join(m["views"])}.

## Per-class accuracy (final predictions)
| class | accuracy |
|---|---|
{per_class}

![confusion matrix](../plots/mygo/confusion.png)

![misclassified](../plots/mygo/misclassified.png)

Training curves: {", ".join(f"[{n}](../plots/mygo/train_{n}.png)" for n in names)}.
"""


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
