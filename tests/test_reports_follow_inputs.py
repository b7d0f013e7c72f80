"""No typed-in result in a generated report: each task's report renderer, run in-process on the committed
inputs (metrics, recorded real-data runs, plot tables, measured/spreads.json) copied to a tmp root with every
float in them changed, twice with two different changes. A decimal number that reads the same in both reports
did not follow its input: it must be a param or a config constant (a course rule), or one of the few literals
listed below with the reason it is not a result. Fast: no training, no data."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import re
from pathlib import Path
from statistics import NormalDist
from types import ModuleType
from typing import Any

import pytest

from stages.common.headlines import SPREADS_FILE, spread_section

ROOT = Path(__file__).resolve().parents[1]
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w])")

# Decimal numbers a report may state although they follow no input, each with why.
NOT_RESULTS = {
    "twolayer": {
        "0.2": "ESRGAN's residual scaling, in the reference list",
        "1.0": "this project's own target for the ratio on the small set",
    },
    "vlm-caption": {"3.2": "the model's name, Llama-3.2"},
    "dip-ddpm": {"29.2": "Ulyanov et al.'s published PSNR, cited as not comparable"},
}


# ---------------------------------------------------------------- changed inputs


def bend(x: float, k: float) -> float:
    """A monotone, non-linear change: ratios and differences of two numbers change too, and 0 moves."""
    return (abs(x) ** k if x >= 0 else -(abs(x) ** k)) + 0.0137 * (k - 1)


def change(value: Any, k: float) -> Any:
    """Every float bent by k; every count above 1 (an int: images, classes, parameters) bent too and rounded, so
    ratios of counts change; bools and strings kept."""
    if isinstance(value, dict):
        return {key: change(v, k) for key, v in value.items()}
    if isinstance(value, list):
        return [change(v, k) for v in value]
    if isinstance(value, float):
        return bend(value, k)
    if isinstance(value, int) and not isinstance(value, bool) and value > 1:
        return max(2, round(value**k)) + (1 if k > 1 else 0)
    return value


def change_csv(text: str, k: float) -> str:
    out = []
    for row in csv.reader(text.splitlines()):
        cells = []
        for cell in row:
            try:
                cells.append(repr(bend(float(cell), k)) if "." in cell else cell)
            except ValueError:
                cells.append(cell)
        out.append(cells)
    return "\n".join(",".join(r) for r in out) + "\n"


def inputs(root: Path, k: float) -> Path:
    """The committed inputs of the package stages under `root`, every float changed by `change(·, k)`."""
    files = [*ROOT.glob("metrics/*.json"), *ROOT.glob("reports/*.json"), *ROOT.glob("plots/*/*.csv"),
             *ROOT.glob("data/*/predictions/*.json"), *ROOT.glob("measured/*.json"), ROOT / SPREADS_FILE]  # fmt: skip
    for src in files:
        dest = root / src.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".json":
            dest.write_text(json.dumps(change(json.loads(src.read_text(encoding="utf-8")), k)), encoding="utf-8")
        else:
            dest.write_text(change_csv(src.read_text(encoding="utf-8"), k), encoding="utf-8")
    return root


# ---------------------------------------------------------------- what may stay the same


def numbers_of(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return numbers_of(dataclasses.asdict(value))
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_of(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in numbers_of(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []


def spellings(x: float) -> set[str]:
    out = {f"{x:g}", repr(x)}
    for scale in (1, 100):
        out |= {f"{scale * x:.{d}f}" for d in range(1, 5)} | {f"{scale * x:g}"}
    return out


# Numbers a report computes from config constants alone (course rules, peers' published figures).
DERIVED = {
    "twolayer": lambda config: [
        config.PEERS["best_two_layer"] / config.PEERS["its_resnet34"],
        NormalDist().inv_cdf(0.5 + config.CI_LEVEL / 2),  # the interval's z
        60 * config.BUDGET_MINUTES,  # the budget in seconds
    ]
}


def allowed(task: str, params: Any, config: ModuleType) -> set[str]:
    constants = [v for name, v in vars(config).items() if name.isupper()]
    values = numbers_of(params) + numbers_of(constants) + (DERIVED[task](config) if task in DERIVED else [])
    return {s for v in values for s in spellings(v)} | set(NOT_RESULTS.get(task, {}))


def unchanged(a: str, b: str) -> list[tuple[str, str]]:
    """(number, line of report a) for each decimal that reads the same at the same place of both reports: lines are
    paired by their text with the numbers taken out, numbers by their place in the line."""
    shape = [DECIMAL.sub("#", line) for line in b.splitlines()]
    lines_a, lines_b = a.splitlines(), b.splitlines()
    matcher = difflib.SequenceMatcher(None, [DECIMAL.sub("#", line) for line in lines_a], shape, autojunk=False)
    out = []
    for block in matcher.get_matching_blocks():
        for i in range(block.size):
            la, lb = lines_a[block.a + i], lines_b[block.b + i]
            out += [(x, la) for x, y in zip(DECIMAL.findall(la), DECIMAL.findall(lb), strict=True) if x == y]
    return out


# ---------------------------------------------------------------- the renderers


def _params(module: ModuleType) -> Any:
    return module.load(ROOT / "params.yaml")


def render(task: str, root: Path) -> tuple[str, Any, ModuleType]:
    """The report of `task` from the inputs under `root` (the part of the package stage that writes it)."""
    if task == "vit":
        from stages.vit import config, package

        p, common = _params(config)
        return package.run(p, common, config.Paths(root)), p, config
    if task == "dynconv":
        from stages.dynconv import config, package

        p, common = _params(config)
        return package.run(p, common, config.Paths(root)), p, config
    if task == "twolayer":
        from stages.twolayer import config, package

        p, common = _params(config)
        return package.run(p, common, config.Paths(root)), p, config
    if task == "coco-caption":
        from stages.coco_caption import config, package

        p, common = _params(config)
        for name in json.loads(config.Paths(root).metrics.read_text(encoding="utf-8")):  # captions: no numbers
            path = config.Paths(root).predictions(name)
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"train": [], "val": []}), encoding="utf-8")
        return package.run(p, common, config.Paths(root)), p, config
    if task == "pokemon":
        from stages.pokemon import config, package

        p, _ = _params(config)
        return package.report(p, config.Paths(root)) + spread_section(task, root), p, config
    if task == "mygo":
        from stages.mygo import config, package

        p, _ = _params(config)
        return package.report(p, config.Paths(root)) + spread_section(task, root), p, config
    if task == "ddpm":
        from stages.ddpm import config, package

        p, _ = _params(config)
        return package.report(p, config.Paths(root)) + spread_section(task, root), p, config
    raise KeyError(task)


TASKS = ["vit", "dynconv", "twolayer", "coco-caption", "pokemon", "mygo", "ddpm"]


@pytest.mark.parametrize("task", TASKS)
def test_every_decimal_in_the_report_follows_its_input(task, tmp_path):
    a, params, config = render(task, inputs(tmp_path / "a", 0.7))
    b, _, _ = render(task, inputs(tmp_path / "b", 1.4))
    ok = allowed(task, params, config)
    stuck = [(n, line) for n, line in unchanged(a, b) if n not in ok]
    assert not stuck, f"{task}: numbers that did not follow the inputs:\n" + "\n".join(
        f"{n}: {line[:160]}" for n, line in stuck[:20]
    )


def test_the_spread_section_reads_the_measured_file(tmp_path):
    """The section says what the file says, scale included; no file: it says how to measure."""
    assert "Not measured yet" in spread_section("vit", tmp_path)
    entry = {"scale": "`dir:../shared/data/cifar10`", "seeds": [5, 6, 7], "command": "python benchmarks/spread.py "
             "vit --seeds 5 6 7", "date": "2031-01-02", "machine": {"model_name": "Some CPU"},
             "metrics": {"test_accuracy": {"mean": 0.5123, "std": 0.0234, "n": 3}}}  # fmt: skip
    (tmp_path / SPREADS_FILE).parent.mkdir(parents=True)
    (tmp_path / SPREADS_FILE).write_text(json.dumps({"tasks": {"vit": entry}}))
    text = spread_section("vit", tmp_path)
    assert "| test acc (`test_accuracy`) | 0.5123 | 0.023 |" in text, text
    assert "seeds 5, 6, 7" in text and "`dir:../shared/data/cifar10` scale" in text and "2031-01-02" in text
    assert "sample scale" not in text
    assert "Some CPU" in text


def test_the_committed_spreads_file_covers_every_measured_headline():
    from stages.common.headlines import TASKS as REGISTRY
    from stages.common.headlines import read_spreads

    measured = read_spreads(ROOT)
    for task, spec in REGISTRY.items():
        keys = {h.key for h in spec.measured()}
        assert keys <= set(measured[task]["metrics"]), task
        assert measured[task]["seeds"] == list(spec.seeds), task
        assert all(set(v) >= {"mean", "std", "n", "values"} for v in measured[task]["metrics"].values()), task
