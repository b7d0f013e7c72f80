"""Load `params.yaml` sections into typed dataclasses.

Every task declares its parameters as nested dataclasses with defaults. Loading
checks every key and value against them, so a typo or a wrong type is one clear
error that names the key, instead of a silently ignored setting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ParamsError(Exception):
    """A parameter is unknown, missing or of the wrong type; the message names it."""


@dataclasses.dataclass
class CommonParams:
    """Settings shared by every stage: `common:` in params.yaml."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 2  # torch intra-op threads: a fixed number, since the float reductions depend on it
    mlflow: bool = True  # log runs to MLflow (metrics/*.json stay the source of truth)
    nproc: int = 1  # training processes (torchrun, DDP); the global batch stays the task's batch_size
    kernels: Literal["portable", "fast"] = "portable"  # MKL's CPU kernels: see stages/common/runtime.set_kernels


def read_params_file(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as err:  # one line: where, and what (PyYAML's message spans several)
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections")
    return data


def load_params(section: str, schema: type[T], path: str | Path = "params.yaml") -> T:
    """Read `section` of the params file into `schema`, validating every key."""
    data = read_params_file(path)
    if section not in data:
        raise ParamsError(f"{path}: missing section '{section}'")
    return from_dict(schema, data[section], where=section)


def from_dict(schema: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `schema` from a mapping; unknown keys and wrong types raise ParamsError."""
    if not isinstance(data, dict):
        raise ParamsError(f"'{where}' must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(
            f"unknown parameter '{_join(where, unknown[0])}' (known keys of '{where}': {', '.join(sorted(fields))})"
        )
    values = {}
    for name, field in fields.items():
        key = _join(where, name)
        if name in data:
            values[name] = _convert(hints[name], data[name], key)
        elif _recorded is not None and dataclasses.is_dataclass(hints[name]) and field.default_factory is hints[name]:
            values[name] = from_dict(hints[name], {}, key)  # a default section records its reads too
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"missing parameter '{key}'")
    cls = _recording_class(schema, where) if _recorded is not None else schema
    return cls(**values)


def to_dict(params: Any) -> dict[str, Any]:
    """Every value, for logging or hashing: bookkeeping, so not counted as reads by `recording()`."""
    with unrecorded():
        return dataclasses.asdict(params)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = _join(prefix, key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if origin is Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(c) for c in get_args(hint))
            raise ParamsError(f"parameter '{key}' is {value!r}; expected one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in get_args(hint):
            try:
                return _convert(option, value, key)
            except ParamsError:
                pass
        raise ParamsError(f"parameter '{key}' is {value!r}, which fits none of {hint}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"parameter '{key}' must be a mapping, got {value!r}")
        _, item = get_args(hint) or (str, Any)
        return {str(k): _convert(item, {} if v is None and dataclasses.is_dataclass(item) else v, _join(key, str(k)))
                for k, v in value.items()}  # fmt: skip
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"parameter '{key}' must be a list, got {value!r}")
        (item,) = get_args(hint) or (Any,)
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise ParamsError(f"parameter '{key}' must be null, got {value!r}")
        return None
    if hint is float:  # finite: YAML's .nan and .inf, and 1e309 (read as inf), are refused here
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"parameter '{key}' must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the largest float
            number = math.inf
        if not math.isfinite(number):
            raise ParamsError(f"parameter '{key}' is {number}; it must be a finite number")
        return number
    if hint is int:  # a 64-bit integer (what torch and numpy take); a seed (`seed`, `*_seed`): 0 .. 2**32 - 1
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"parameter '{key}' must be an integer, got {value!r}")
        name = key.rsplit(".", 1)[-1]
        low, high = (0, 2**32 - 1) if name == "seed" or name.endswith("_seed") else (-(2**63), 2**63 - 1)
        if not low <= value <= high:
            raise ParamsError(f"parameter '{key}' is {value}; it must be in [{low}, {high}]")
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise ParamsError(f"parameter '{key}' must be a {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter type {hint} for '{key}'")


# --- Which keys a stage reads -------------------------------------------------------------
# While `recording()` is active, `from_dict` builds instances that note every field read, as the
# full key ('pokemon.train.lr'). The contract test runs each stage this way and compares the keys
# with the stage's `params:` in dvc.yaml. A field whose value holds dataclasses (a nested section,
# a dict of sections) is not a read by itself: the reads of its fields are.

_recorded: set[str] | None = None
_paused = 0
_classes: dict[tuple[type, str], type] = {}


@contextlib.contextmanager
def recording() -> Iterator[set[str]]:
    """Record the params keys read while inside (for params loaded inside too); yields the growing set."""
    global _recorded
    outer, _recorded = _recorded, set()
    try:
        yield _recorded
    finally:
        _recorded = outer


@contextlib.contextmanager
def unrecorded() -> Iterator[None]:
    """Reads that are bookkeeping, not use (logging every param, hashing them for a checkpoint key)."""
    global _paused
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1


def _holds_sections(value: Any) -> bool:
    if dataclasses.is_dataclass(value):
        return True
    if isinstance(value, dict):
        return any(dataclasses.is_dataclass(v) for v in value.values())
    return False


def _recording_class(schema: type[T], where: str) -> type[T]:
    key = (schema, where)
    if key not in _classes:
        names = frozenset(f.name for f in dataclasses.fields(schema))

        def __getattribute__(self: Any, name: str) -> Any:  # noqa: N807
            value = object.__getattribute__(self, name)
            if _recorded is not None and not _paused:
                if name in names and not _holds_sections(value):
                    _recorded.add(_join(where, name))
                elif name == "__dict__":  # vars(section): every field at once
                    _recorded.update(_join(where, n) for n, v in value.items() if n in names and not _holds_sections(v))
            return value

        _classes[key] = type(
            schema.__name__,
            (schema,),
            {
                "__getattribute__": __getattribute__,
                "__module__": schema.__module__,
                "__qualname__": schema.__qualname__,
            },
        )
    return _classes[key]


# --- value ranges, checked when a task's config.load() reads its section (before anything is built) ---


@dataclasses.dataclass(frozen=True)
class Range:
    """low/high bounds (None = unbounded); `open_low`/`open_high` exclude the bound itself."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def contains(self, value: float) -> bool:
        """Whether `value` (an int or a float) lies in the range; NaN lies in none."""
        if value != value:  # NaN: every comparison below would be False, so it would pass
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.open_high else value > self.high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {_number(self.low)}"
        if self.low is None:
            return f"{'<' if self.open_high else '<='} {_number(self.high)}"
        low, high = _number(self.low), _number(self.high)
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


def _number(bound: float | None) -> str:
    """An int bound in full (`1000000`, not `1e+06`), a float one short (`0.001`)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def at_least(low: float) -> Range:
    return Range(low)


def above(low: float) -> Range:
    return Range(low, open_low=True)


def between(low: float, high: float, open_high: bool = False) -> Range:
    """[low, high] (or [low, high) with `open_high`); int bounds bound an int param that sizes an allocation,
    e.g. `between(1, 4096)` for a width, and show in full in the error."""
    return Range(low, high, open_high=open_high)


PROBABILITY = between(0.0, 1.0, open_high=True)  # dropout and the like: 1.0 would drop everything


def validator(check: Callable[..., T]) -> Callable[..., T]:
    """Decorate a task's `validate(p)`: its reads check values, they are not use, so `recording()` skips them."""

    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with unrecorded():
            return check(*args, **kwargs)

    return wrapper


@validator
def check_ranges(params: Any, section: str, ranges: dict[str, Range]) -> None:
    """Each dotted key of `ranges` (relative to `section`) must lie in its range; else ParamsError naming it.

    A key whose value is a list is checked item by item."""
    for key, allowed in ranges.items():
        value: Any = params
        for part in key.split("."):
            value = getattr(value, part)
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if not allowed.contains(item):
                name = f"{section}.{key}" + (f"[{i}]" if isinstance(value, list) else "")
                raise ParamsError(f"parameter '{name}' is {item!r}; it must be {allowed}")


def require(ok: bool, message: str) -> None:
    """A check across params (e.g. one must divide another): ParamsError(message) unless `ok`."""
    if not ok:
        raise ParamsError(message)


COMMON_RANGES = {"threads": at_least(1), "nproc": at_least(1)}


def load_common(path: str | Path = "params.yaml") -> CommonParams:
    """The `common:` section, loaded and range-checked (`common.threads` >= 1, `common.nproc` >= 1)."""
    common = load_params("common", CommonParams, path)
    check_ranges(common, "common", COMMON_RANGES)
    return common


def check_sha256(value: str, key: str) -> None:
    """'' (none given) or 64 hexadecimal digits, either case."""
    import re

    if value and not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
        raise ParamsError(f"parameter '{key}' is {value!r}; expected 64 hexadecimal digits (a sha256)")
