"""Bad values for every key of every task's params (Hypothesis), from the tiny params that are known good.

One key of tests/tiny_params.yaml (merged onto params.yaml) gets a drawn value: NaN, ±infinity, `1.0e+309`,
integers beyond 64 bits, wrong types, out-of-range and huge numbers, odd strings. The contract: loading and
validating the params (what a stage does before building anything) either accepts the value or raises
ParamsError naming that key; never another exception. A non-finite number is refused for every key, and so is
an integer beyond 64 bits (no library can use one) wherever the key is not a float; every seed fits every
random generator (0..2**32-1); every integer size that allocates has an upper bound. A few refusals also run as
the task's first stage, as a process: exactly one `error:` line naming the key, and no output written.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import re
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
import yaml
from hypothesis import given, note
from hypothesis import strategies as st

from fuzz.contract import call, error_line, fuzz_settings, run_module, snapshot

# task -> (package, first stage as a process)
TASKS = {
    "pokemon": ("pokemon", ["stages.pokemon.download"]),
    "news": ("news", ["stages.news.download"]),
    "mygo": ("mygo", ["stages.mygo.download"]),
    "coco-caption": ("coco_caption", ["stages.coco_caption.download"]),
    "vit": ("vit", ["stages.vit.download"]),
    "ddpm": ("ddpm", ["stages.ddpm.download"]),
    "vlm-caption": ("vlm_caption", ["stages.vlm_caption.download"]),
    "mini-imagenet": ("mini_imagenet", ["stages.mini_imagenet.download"]),
    "dynconv": ("dynconv", ["stages.dynconv.train", "dynamic"]),
    "dip-ddpm": ("dip_ddpm", ["stages.dip_ddpm.prepare"]),
    "twolayer": ("twolayer", ["stages.twolayer.train", "twolayer"]),
    "common": ("pokemon", ["stages.pokemon.download"]),  # `common:` is read by every stage
}
E309 = "<1.0e+309>"  # written verbatim: YAML reads it as infinity
NON_FINITE = [math.nan, math.inf, -math.inf, E309]
HUGE_INTS = [2**63, 10**30, -(2**63) - 1]
OTHER = [-1, 0, 1, 3, 10**9, 10**12, 1e-300, 1e300, -0.5, 0.5, 2.5, "", "abc", "nan", "1e-3", "sample", "dir:",
         "../x", True, False, None, [], {}, [1, 2], ["x"], {"a": 1}]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(NON_FINITE + HUGE_INTS),
    st.sampled_from(OTHER),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@functools.cache
def base_params() -> str:
    """Every section with the tiny overrides, common on CPU without MLflow (as JSON: a fresh copy per use)."""
    from tiny import tiny_sections

    sections = tiny_sections()
    sections["common"].update(mlflow=False, device="cpu", threads=1)
    return json.dumps(sections)


def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """The path of every scalar and every list (and each list item) under `value`."""
    if isinstance(value, dict):
        return [leaf for key, v in value.items() for leaf in leaves(v, (*path, key))]
    if isinstance(value, list):
        return [path, *(leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i)))]
    return [path]


def key_name(task: str, path: tuple) -> str:
    """('train', 'lr') -> 'pokemon.train.lr'; list items as 'key[0]'."""
    name = task
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def names(task: str, path: tuple) -> tuple[str, ...]:
    """What a refusal may call the key: its full name, or for a list item the list's name."""
    whole = tuple(p for p in path if not isinstance(p, int))
    return (key_name(task, path), key_name(task, whole))


def named(message: str, task: str, path: tuple) -> bool:
    return any(f"'{name}'" in message or f"'{name}[" in message for name in names(task, path))


def schema_of(task: str) -> type:
    if task == "common":
        from stages.common.params import CommonParams

        return CommonParams
    config = importlib.import_module(f"stages.{TASKS[task][0]}.config")
    return get_args(get_type_hints(config.load)["return"])[0]


def hint_at(task: str, path: tuple) -> Any:
    """The declared type of the value at `path`."""
    hint: Any = schema_of(task)
    for part in path:
        if dataclasses.is_dataclass(hint):
            hint = get_type_hints(hint)[part]
        elif get_origin(hint) in (dict, list):
            hint = get_args(hint)[-1]
        else:  # an optional section or the like: the dataclass option
            hint = next(h for h in get_args(hint) if dataclasses.is_dataclass(h) or get_origin(h) in (dict, list))
    return hint


def options(hint: Any) -> tuple:
    return get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def must_refuse(value: Any, hint: Any) -> bool:
    """Non-finite numbers for any key; integers beyond 64 bits wherever the key does not take a float."""
    if hint is Any:
        return False
    if value == E309 or (isinstance(value, float) and not math.isfinite(value)):
        return True
    huge = isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63
    return huge and float not in options(hint)


def set_value(sections: dict, task: str, path: tuple, value: Any) -> None:
    target = sections[task]
    for part in path[:-1]:
        target = target[part]
    if path:
        target[path[-1]] = value
    else:
        sections[task] = value


def write(folder: Path, task: str, path: tuple | None = None, value: Any = None) -> Path:
    """params.yaml with `common` and the section the stage reads (`pokemon` for `common`), the value at `path`
    changed (none when None)."""
    sections = json.loads(base_params())
    if path is not None:
        set_value(sections, task, path, value)
    read = {"common": sections["common"], stage_section(task): sections[stage_section(task)]}
    text = (
        yaml.safe_dump(read, sort_keys=False).replace(f"'{E309}'", "1.0e+309").replace(E309, "1.0e+309")
    )  # quoted or not
    (folder / "params.yaml").write_text(text, encoding="utf-8")
    return folder / "params.yaml"


def stage_section(task: str) -> str:
    return "pokemon" if task == "common" else task


def load_and_validate(task: str, params: Path) -> None:
    """What each stage does with its params before building anything: load, then the stage's own checks."""
    config = importlib.import_module(f"stages.{TASKS[task][0]}.config")
    p, _ = config.load(params)  # `common` too
    if task == "mini-imagenet":
        p.check_data().check_prepare()
    elif task == "dynconv":
        for name in config.MODELS:
            p.check_model(name)
        p.check_evaluate()
    elif task == "twolayer":
        for name in config.MODELS:
            config.validate(p, config.check_model(name))
        config.validate(p, evaluate=True)


@st.composite
def bad_param(draw: st.DrawFn) -> tuple[str, tuple, Any]:
    task = draw(st.sampled_from(sorted(TASKS)))
    path = draw(st.sampled_from(leaves(json.loads(base_params())[task])))
    return task, path, draw(VALUES)


def check_in_process(task: str, path: tuple, value: Any) -> None:
    name = key_name(task, path)
    note(f"{name} = {value!r}")
    with tempfile.TemporaryDirectory() as tmp:
        outcome = call(lambda: load_and_validate(task, write(Path(tmp), task, path, value)))
    if outcome.error is None:
        assert not must_refuse(value, hint_at(task, path)), f"{name} = {value!r} accepted"
    else:
        assert named(str(outcome.error), task, path), f"the refusal does not name {name}: {outcome.error}"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_tiny_params_are_valid(task: str, tmp_path: Path) -> None:
    """The starting point: every section as the fuzzer starts from it passes its stages' checks."""
    outcome = call(lambda: load_and_validate(task, write(tmp_path, task)))
    assert outcome.error is None, outcome.error


@fuzz_settings(300)
@given(bad_param())
def test_bad_param_is_accepted_or_refused_by_name(case: tuple[str, tuple, Any]) -> None:
    check_in_process(*case)


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("value", [math.nan, E309, 2**63], ids=["nan", "1e309", "2**63"])
def test_every_numeric_key_refuses_non_finite_and_huge(task: str, value: Any, tmp_path: Path) -> None:
    """Not drawn but exhaustive: every number-typed key of every task refuses NaN, 1.0e+309 (infinity) and 2**63
    (where it takes no float), naming the key."""
    section = json.loads(base_params())[task]
    wrong = []
    for path in leaves(section):
        hint = hint_at(task, path)
        if not {int, float} & set(options(hint)) or not must_refuse(value, hint):
            continue
        outcome = call(lambda path=path: load_and_validate(task, write(tmp_path, task, path, value)))
        if outcome.error is None or not named(str(outcome.error), task, path):
            wrong.append(f"{key_name(task, path)}: {'accepted' if outcome.error is None else outcome.error}")
    assert not wrong, "\n".join(wrong)


# Integer keys that size an allocation (images, batches, widths, steps, samples): 10**12 must be refused before
# anything is built (issue 25: an upper bound for every size that allocates). Matched by name; limits on what
# exists (`max_*`, `fid_*` images: at most what the data holds) and warm-up lengths allocate nothing.
SIZE_KEY = re.compile(r"(size|batch|sample_(train|test|val|valid|images)|n_images|images$|steps$|timesteps|dim$|"
                      r"width|channels|hidden|max_len|vocab|heads?$|layers|d_model|d_ff|d_hid|members|per_class|rows)")  # fmt: skip


def test_sizes_that_allocate_have_an_upper_bound(tmp_path: Path) -> None:
    wrong = []
    for task in sorted(TASKS):
        for path in leaves(json.loads(base_params())[task]):
            last = next((p for p in reversed(path) if isinstance(p, str)), "")
            limit = "seed" in last or last.startswith(("max_", "fid_", "warmup"))
            if int not in options(hint_at(task, path)) or not SIZE_KEY.search(last) or limit:
                continue
            outcome = call(lambda task=task, path=path: load_and_validate(task, write(tmp_path, task, path, 10**12)))
            if outcome.error is None:
                wrong.append(key_name(task, path))
    assert not wrong, f"accept 10**12: {', '.join(wrong)}"


def test_seeds_fit_every_random_generator(tmp_path: Path) -> None:
    """A seed goes to random.seed, numpy (np.random.seed takes 0..2**32-1, default_rng no negatives) and torch:
    -1 and 2**32 are refused by name, not a ValueError deep inside numpy (`pokemon.data.sample_seed: -1`)."""
    wrong = []
    for task in sorted(TASKS):
        for path in leaves(json.loads(base_params())[task]):
            if not path or not str(path[-1]).endswith("seed"):
                continue
            for value in (-1, 2**32):
                outcome = call(lambda t=task, p=path, v=value: load_and_validate(t, write(tmp_path, t, p, v)))
                if outcome.error is None:
                    wrong.append(f"{key_name(task, path)}: {value}")
    assert not wrong, f"accepted: {', '.join(wrong)}"


def check_as_process(task: str, path: tuple, value: Any) -> None:
    name = key_name(task, path)
    note(f"{name} = {value!r}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write(folder, task, path, value)
        before = snapshot(folder)
        module, *args = TASKS[task][1]
        line = error_line(run_module(module, args, folder))
        assert named(line, task, path), f"{line!r} does not name {name}"
        assert snapshot(folder) == before


@st.composite
def refused_param(draw: st.DrawFn) -> tuple[str, tuple, Any]:
    """A key and a value every stage must refuse."""
    task = draw(st.sampled_from(sorted(TASKS)))
    path = draw(st.sampled_from(leaves(json.loads(base_params())[task])))
    hint = hint_at(task, path)
    return task, path, draw(st.sampled_from([v for v in NON_FINITE + HUGE_INTS if must_refuse(v, hint)]))


@fuzz_settings(6)
@given(refused_param())
def test_refused_param_is_one_error_line_as_a_process(case: tuple[str, tuple, Any]) -> None:
    check_as_process(*case)


@pytest.mark.slow
@fuzz_settings(5000)
@given(bad_param())
def test_bad_param_is_accepted_or_refused_by_name_many(case: tuple[str, tuple, Any]) -> None:
    check_in_process(*case)


@pytest.mark.slow
@fuzz_settings(60)
@given(refused_param())
def test_refused_param_is_one_error_line_as_a_process_many(case: tuple[str, tuple, Any]) -> None:
    check_as_process(*case)
