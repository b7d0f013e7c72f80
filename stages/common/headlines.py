"""Every task's headline metrics and seed keys (one registry), and the measured run-to-run spreads.

The registry is read by `python -m stages.common.exps` (the columns it shows), `benchmarks/spread.py` (the
seeds it sets and the metrics it reads) and the package stages (a report's "Run-to-run spread" section). The
spreads themselves are not typed in here: `benchmarks/spread.py <task> --write` measures them into
`measured/spreads.json` (with the command, date, machine, seeds and data scale that made them), and
`spread_section` / `spreads` read that file. Imports nothing heavy: every package stage imports it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from pathlib import Path
from typing import Any

SPREADS_FILE = Path("measured") / "spreads.json"  # relative to the repo root
NOISE_STDS = 2.0  # a difference under this many run-to-run stds is not evidence


@dataclasses.dataclass(frozen=True)
class Headline:
    label: str  # column name, short
    file: str  # metrics file
    key: str  # dotted key in it
    own_std: str = ""  # a dotted key of the same file holding the task's own std over its repeated runs
    lower_is_better: bool = False
    spread: bool = False  # benchmarks/spread.py measures its spread over seeds


@dataclasses.dataclass(frozen=True)
class Task:
    seed_keys: tuple[str, ...]  # params.yaml keys set to the run's seed; a `*` stands for every ensemble member
    headlines: tuple[Headline, ...]
    seeds: tuple[int, ...] = (0, 1, 2)  # the seeds the spread is measured over by default
    target: str = ""  # the DVC stage that ends training + evaluation; default <task>-evaluate
    source_key: str = ""  # the params key naming the data source (the scale); default <task>.data.source
    # The dotted keys (fnmatch patterns; a list is one value) of the task's evaluation that go to its metrics file,
    # the numbers a student quotes and `dvc metrics diff` shows; the whole result goes to reports/<task>_detail.json.
    # Empty: the task's evaluation is its metrics file, already this short.
    metrics: tuple[str, ...] = ()

    def measured(self) -> tuple[Headline, ...]:
        return tuple(h for h in self.headlines if h.spread)


def _h(label: str, file: str, key: str, **kw: Any) -> Headline:
    return Headline(label, file, key, **kw)


# mygo's members each have a seed: member m gets its committed seed + 100 × the run's seed (MEMBER_SEED_STRIDE).
# dynconv trains `train.runs` = 2 models per seed (seeds s, s + 1): seeds 0, 2, 4 keep the runs independent; its
# RGB accuracies also carry the std over those runs in its own metrics (`own_std`).
# dip-ddpm: the DDPM prior (the ddpm task) stays as committed; the seed is DIP's initialisation and reverse noise.
TASKS: dict[str, Task] = {
    "pokemon": Task(("pokemon.seed",), (
        _h("FID", "metrics/pokemon.json", "fid", lower_is_better=True, spread=True),
        _h("PDR", "metrics/pokemon.json", "pdr", spread=True),
        _h("PDR prob", "metrics/pokemon.json", "pdr_mean_probability", spread=True),
        _h("dev pixel acc", "metrics/pokemon.json", "dev_pixel_accuracy"),
    )),
    "news": Task(("news.seed",), (
        _h("dev acc", "metrics/news.json", "val_accuracy", spread=True),
        _h("dev macro F1", "metrics/news.json", "val_macro_f1"),
    )),
    "mygo": Task(("mygo.models.*.seed",), (
        _h("ensemble acc", "metrics/mygo.json", "accuracy", spread=True),
        _h("best single", "metrics/mygo.json", "best_single_accuracy"),
    ), metrics=("accuracy", "best_single_accuracy", "best_tta_accuracy", "ensemble_single_view", "ensemble_gain",
                "passes.*")),
    "coco-caption": Task(("coco-caption.seed",), (
        _h("BLEU4 h4l6 1e-3", "metrics/coco-caption.json", "h4_l6_lr1e-3.bleu4", spread=True),
        _h("BLEU4 h4l6 1e-4", "metrics/coco-caption.json", "h4_l6_lr1e-4.bleu4", spread=True),
        _h("BLEU4 h2l2 1e-4", "metrics/coco-caption.json", "h2_l2_lr1e-4.bleu4", spread=True),
    ), metrics=("*.bleu?", "*.final_train_loss", "*.meets_target")),
    "vit": Task(("vit.seed",), (
        _h("test acc", "metrics/vit.json", "test_accuracy", spread=True),
        _h("train acc", "metrics/vit.json", "train_accuracy"),
    ), metrics=("test_accuracy", "train_accuracy", "final_train_loss", "meets_course_*")),
    "ddpm": Task(("ddpm.seed",), (
        _h("FID", "metrics/ddpm.json", "fid", lower_is_better=True, spread=True),
        _h("DDPM FID", "metrics/ddpm.json", "ddpm_fid", lower_is_better=True),
        _h("DDIM-50 FID", "metrics/ddpm.json", "ddim50_fid", lower_is_better=True),
        _h("final loss", "metrics/ddpm_train.json", "final_loss", lower_is_better=True),
    )),
    "vlm-caption": Task(("vlm-caption.seed",), (
        _h("BLEU", "metrics/vlm-caption.json", "bleu", spread=True),
        _h("exact match", "metrics/vlm-caption.json", "exact_match"),
        _h("baseline BLEU", "metrics/vlm-caption.json", "baseline_bleu"),
    )),
    "dynconv": Task(("dynconv.seed",), (
        _h("RGB dynamic", "metrics/dynconv.json", "accuracy.dynamic.RGB", own_std="spread.dynamic.RGB", spread=True),
        _h("RGB naive", "metrics/dynconv.json", "accuracy.naive.RGB", own_std="spread.naive.RGB", spread=True),
        _h("worst 1ch dyn", "metrics/dynconv.json", "worst_single_accuracy.dynamic", spread=True),
        _h("mean subset dyn", "metrics/dynconv.json", "mean_subset_accuracy.dynamic"),
        _h("mean subset naive", "metrics/dynconv.json", "mean_subset_accuracy.naive"),
    ), seeds=(0, 2, 4), source_key="mini-imagenet.data.source", metrics=(
        "accuracy.*", "worst_single_accuracy.*", "mean_subset_accuracy.*", "rgb_gap_dynamic_minus_naive",
        "spread.*.RGB", "dynamic_module_flops_share", "targets_met.*",
    )),
    "dip-ddpm": Task(("dip-ddpm.seed",), (
        _h("PSNR25 dip-ddpm", "metrics/dip-ddpm.json", "sigma_25.dip-ddpm.psnr.mean", spread=True),
        _h("PSNR25 ddpm", "metrics/dip-ddpm.json", "sigma_25.ddpm.psnr.mean", spread=True),
        _h("PSNR25 dip", "metrics/dip-ddpm.json", "sigma_25.dip.psnr.mean", spread=True),
        _h("SSIM25 dip-ddpm", "metrics/dip-ddpm.json", "sigma_25.dip-ddpm.ssim.mean"),
    ), metrics=("sigma_*.dip-ddpm.*.mean", "sigma_*.ddpm.*.mean", "sigma_*.dip.*.mean", "combination_*")),
    "twolayer": Task(("twolayer.seed",), (
        _h("twolayer test", "metrics/twolayer.json", "twolayer.test_accuracy", spread=True),
        _h("resnet34 test", "metrics/twolayer.json", "resnet34.test_accuracy", spread=True),
        _h("ratio", "metrics/twolayer.json", "ratio", spread=True),
    ), source_key="mini-imagenet.data.source", metrics=(
        "ratio", "ratio_ci.low", "ratio_ci.high", "meets_bar", "ci_clears_*", "flops_ratio", "parameters_ratio", "*.test_accuracy", "*.best_val_accuracy",
        "*.main_layers",
    )),
}  # fmt: skip
MEMBER_SEED_STRIDE = 100


def headlines(task: str) -> tuple[Headline, ...]:
    return TASKS[task].headlines if task in TASKS else ()


def metrics_view(task: str, full: dict[str, Any]) -> dict[str, Any]:
    """The part of a task's whole evaluation `full` that its metrics file holds (the registry's `metrics`
    patterns, nested as in `full`); all of `full` for a task without patterns."""
    patterns = TASKS[task].metrics if task in TASKS else ()
    if not patterns:
        return full

    def keep(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                if sub := keep(value, dotted + "."):
                    out[key] = sub
            elif any(fnmatch.fnmatchcase(dotted, pat) for pat in patterns):
                out[key] = value
        return out

    return keep(full, "")


def detail_path(root: Path, task: str) -> Path:
    """Where a task's whole evaluation lives (a DVC out, not a metric): reports/<task>_detail.json under `root`."""
    return Path(root) / "reports" / f"{task}_detail.json"


def write_evaluation(task: str, full: dict[str, Any], root: Path, metrics: Path) -> None:
    """An evaluate stage's result: the whole of it to detail_path(root, task), its headline view to `metrics`."""
    from stages.common.io import write_json

    write_json(detail_path(root, task), full)
    write_json(metrics, metrics_view(task, full))


def target(task: str) -> str:
    return TASKS[task].target or f"{task}-evaluate"


def source_key(task: str) -> str:
    return TASKS[task].source_key or f"{task}.data.source"


# ---------------------------------------------------------------- the measured file


def read_spreads(root: str | Path = ".") -> dict[str, Any]:
    """measured/spreads.json's `tasks` (task -> entry); {} when the file is missing."""
    path = Path(root) / SPREADS_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("tasks") or {}


def spreads(task: str, root: str | Path = ".") -> dict[str, float]:
    """The measured std of each headline (by its dotted key) of `task`; a headline not measured is absent."""
    metrics = (read_spreads(root).get(task) or {}).get("metrics") or {}
    return {k: float(v["std"]) for k, v in metrics.items() if isinstance(v, dict) and _number(v.get("std"))}


def spread_entry(task: str, root: str | Path = ".") -> dict[str, Any]:
    return read_spreads(root).get(task) or {}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def spread_command(task: str, seeds: tuple[int, ...] | list[int] | None = None) -> str:
    seeds = tuple(seeds) if seeds else TASKS[task].seeds if task in TASKS else (0, 1, 2)
    return f"python benchmarks/spread.py {task} --seeds {' '.join(map(str, seeds))} --write"


def spread_section(task: str, root: str | Path = ".") -> str:
    """A report's "Run-to-run spread" section, from measured/spreads.json: the std over seeds of each headline
    metric where measured, with the scale, seeds, date and command that measured it."""
    entry = spread_entry(task, root)
    measured = entry.get("metrics") or {}
    labels = {h.key: h.label for h in headlines(task)}
    rows = [(k, v) for k, v in measured.items() if isinstance(v, dict) and _number(v.get("std"))]
    lines = ["", "## Run-to-run spread", ""]
    if not rows:
        lines.append(f"Not measured yet; `{spread_command(task)}` measures it into `{SPREADS_FILE.as_posix()}`.")
        return "\n".join(lines) + "\n"
    seeds = entry.get("seeds") or []
    lines += [f"| metric | mean | std over seeds {', '.join(map(str, seeds))} |", "|---|---|---|"]
    for key, v in rows:
        mean = f"{v['mean']:.4g}" if _number(v.get("mean")) else "–"
        lines.append(f"| {labels.get(key, key)} (`{key}`) | {mean} | {v['std']:.2g} |")
    when = f" on {entry['date']}" if entry.get("date") else ""
    cpu = (entry.get("machine") or {}).get("model_name")
    where = f" ({cpu})" if cpu else ""
    lines += ["", f"Measured at {entry.get('scale', 'an unrecorded')} scale{when}{where} with `{entry.get('command')}`"
              f" (`{SPREADS_FILE.as_posix()}`). A difference of less than about {NOISE_STDS:g} stds between two runs"
              " is noise, not evidence."]  # fmt: skip
    return "\n".join(lines) + "\n"
