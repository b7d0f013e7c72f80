import dataclasses
from typing import Literal

import pytest

from stages.common.params import CommonParams, ParamsError, flatten, from_dict, load_params


@dataclasses.dataclass
class Inner:
    lr: float = 0.1
    arch: Literal["a", "b"] = "a"
    sizes: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Outer:
    seed: int = 0
    name: str = "x"
    flag: bool = False
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_builds_nested_dataclasses_and_accepts_int_for_float():
    params = from_dict(Outer, {"seed": 3, "inner": {"lr": 1, "arch": "b", "sizes": [1, 2]}}, "task")
    assert params == Outer(seed=3, inner=Inner(lr=1.0, arch="b", sizes=[1, 2]))
    assert isinstance(params.inner.lr, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sed": 1}, "unknown parameter 'task.sed'"),
        ({"inner": {"lrr": 1}}, "unknown parameter 'task.inner.lrr'"),
        ({"seed": "1"}, "'task.seed' must be an integer"),
        ({"seed": True}, "'task.seed' must be an integer"),
        ({"flag": 1}, "'task.flag' must be a bool"),
        ({"inner": {"lr": "fast"}}, "'task.inner.lr' must be a number"),
        ({"inner": {"arch": "c"}}, "'task.inner.arch' is 'c'; expected one of 'a', 'b'"),
        ({"inner": {"sizes": [1, "2"]}}, "'task.inner.sizes[1]' must be an integer"),
        ({"inner": 3}, "'task.inner' must be a mapping"),
    ],
)
def test_bad_params_name_the_key(data, message):
    with pytest.raises(ParamsError) as err:
        from_dict(Outer, data, "task")
    assert message in str(err.value)


def test_load_params_reads_a_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("common:\n  device: cpu\n  mlflow: false\n")
    assert load_params("common", CommonParams, path) == CommonParams(device="cpu", mlflow=False)
    with pytest.raises(ParamsError, match="missing section 'pokemon'"):
        load_params("pokemon", CommonParams, path)
    with pytest.raises(ParamsError, match="file not found"):
        load_params("common", CommonParams, tmp_path / "nope.yaml")


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_ranges_name_the_key_and_the_allowed_values():
    import dataclasses as dc

    from stages.common.params import PROBABILITY, above, at_least, between, check_ranges

    @dc.dataclass
    class Inner:
        dropout: float = 0.1
        sizes: list = dc.field(default_factory=lambda: [1, 2])

    @dc.dataclass
    class Outer:
        lr: float = 1e-3
        inner: Inner = dc.field(default_factory=Inner)

    ranges = {"lr": above(0), "inner.dropout": PROBABILITY, "inner.sizes": at_least(1)}
    check_ranges(Outer(), "task", ranges)
    with pytest.raises(ParamsError, match=r"^parameter 'task.lr' is 0.0; it must be > 0$"):
        check_ranges(Outer(lr=0.0), "task", ranges)
    with pytest.raises(ParamsError, match=r"'task.inner.dropout' is 1.0; it must be in \[0, 1\)"):
        check_ranges(Outer(inner=Inner(dropout=1.0)), "task", ranges)
    with pytest.raises(ParamsError, match=r"'task.inner.sizes\[1\]' is 0; it must be >= 1"):
        check_ranges(Outer(inner=Inner(sizes=[1, 0])), "task", ranges)
    assert str(between(1, 100)) == "in [1, 100]"


def test_common_threads_is_a_fixed_positive_count_and_yaml_errors_are_one_line(tmp_path):
    from stages.common.params import load_common

    path = tmp_path / "params.yaml"
    for bad in (-4, 0):  # 0 was torch's default: a count that depends on the machine, so results would too
        path.write_text(f"common: {{threads: {bad}}}\n")
        with pytest.raises(ParamsError, match=f"'common.threads' is {bad}; it must be >= 1"):
            load_common(path)
    path.write_text("common:\n  threads: [1\n")
    with pytest.raises(ParamsError) as err:
        load_common(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}:3: not valid YAML")
