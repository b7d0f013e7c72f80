"""Every size that allocates has a finite upper bound, checked before anything is built; params.yaml, the
tiny test params and every preset in presets/ stay valid under those bounds."""

import copy
import importlib

import pytest
import yaml

from stages.common.params import ParamsError
from stages.common.preset import overrides
from tests.conftest import ROOT


def _check(task: str, p) -> None:
    """What the task's stages check beyond `config.load` (those that check per stage)."""
    if task == "dynconv":
        p.check_model("dynamic").check_model("naive").check_evaluate()
    elif task == "twolayer":
        config = importlib.import_module("stages.twolayer.config")
        config.validate(p), config.validate(p, "resnet34"), config.validate(p, evaluate=True)
    elif task == "mini-imagenet":
        p.check_data().check_prepare()


TASKS = ["news", "coco-caption", "pokemon", "dynconv", "twolayer", "vit", "vlm-caption", "dip-ddpm", "mygo",
         "mini-imagenet", "ddpm"]  # fmt: skip


def _load(task: str, data: dict, tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    config = importlib.import_module(f"stages.{task.replace('-', '_')}.config")
    p, _ = config.load(path)
    _check(task, p)


def load_common_from(data: dict, tmp_path) -> None:
    from stages.common.params import load_common

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    load_common(path)


def _set(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


@pytest.mark.parametrize("task", TASKS)
def test_params_yaml_and_tiny_params_are_valid(task, tmp_path):
    _load(task, _params(), tmp_path)
    _load(task, _merge(_params(), yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())), tmp_path)


PRESETS = [(f.stem, name) for f in sorted((ROOT / "presets").glob("*.yaml")) for name in yaml.safe_load(f.read_text())]


@pytest.mark.parametrize(("task", "name"), PRESETS, ids=[f"{t}-{n}" for t, n in PRESETS])
def test_every_preset_is_valid(task, name, tmp_path):
    data = _params()
    for item in overrides(task, name, ROOT):  # what `dvc exp run -S` would set
        key, _, value = item.partition("=")
        _set(data, key, yaml.safe_load(value))
    for changed in {item.split(".")[0] for item in overrides(task, name, ROOT)} - {"common"}:
        _load(changed, data, tmp_path)
    load_common_from(data, tmp_path)


def _tables(task: str) -> list[tuple[str, dict]]:
    """(prefix, ranges) of every RANGES table the task checks: keys are prefix + key under its section."""
    from stages.coco_caption import config as coco
    from stages.dynconv import config as dynconv
    from stages.mygo import config as mygo
    from stages.news import config as news
    from stages.pokemon import config as pokemon
    from stages.twolayer import config as twolayer
    from stages.vit import config as vit
    from stages.vlm_caption import config as vlm

    coco_config = next(iter(_params()["coco-caption"]["configs"]))
    mygo_model = next(iter(_params()["mygo"]["models"]))
    tables = {
        "news": [("", news.RANGES)],
        "coco-caption": [("", coco.RANGES), (f"configs.{coco_config}.", coco.CONFIG_RANGES)],
        "pokemon": [("", pokemon.RANGES)],
        "dynconv": [("", dynconv.MODEL_RANGES), ("", dynconv.DYNAMIC_RANGES), ("", dynconv.EVALUATE_RANGES)],
        "twolayer": [("", twolayer.EVALUATE_RANGES), ("", twolayer.TWOLAYER_RANGES), ("", twolayer.TRAIN_RANGES)],
        "vit": [("", vit.RANGES)],
        "vlm-caption": [("", vlm.RANGES)],
        "mygo": [("", mygo.RANGES), (f"models.{mygo_model}.", mygo.MODEL_RANGES)],
    }
    return tables[task]


def _ranged(task: str) -> list[tuple[str, object]]:
    """(key under the task's section, a value just above its upper bound) for every bounded range."""
    lists = {"backbone.blocks"}  # list-valued keys: each item is checked
    return [(prefix + key, [r.high + 1] if key in lists else r.high + 1)
            for prefix, ranges in _tables(task) for key, r in ranges.items() if r.high is not None]  # fmt: skip


# Sizes that allocate and are checked outside a RANGES table.
EXPLICIT = [
    ("dip-ddpm", "threads", 1025), ("dip-ddpm", "data.n_images", 10**9), ("dip-ddpm", "data.val_images", 10**9),
    ("dip-ddpm", "data.image_size", 2**20), ("dip-ddpm", "net.channels", [10**9]),
    ("dip-ddpm", "net.skip_channels", 10**9), ("dip-ddpm", "net.input_channels", 10**9),
    ("dip-ddpm", "dip.iterations", 10**12), ("dip-ddpm", "ddpm.steps", 10**12),
    ("dip-ddpm", "combine.dip_iterations", 10**12), ("dip-ddpm", "combine.t0", 10**12),
    ("dip-ddpm", "combine.steps", 10**12),
    ("mini-imagenet", "data.sample_train", 10**9), ("mini-imagenet", "data.sample_size", 10**9),
    ("mini-imagenet", "data.num_classes", 10**9), ("mini-imagenet", "prepare.image_size", 10**9),
]  # fmt: skip
CASES = [(t, k, v) for t in ("news", "coco-caption", "pokemon", "dynconv", "twolayer", "vit", "vlm-caption", "mygo")
         for k, v in _ranged(t)] + EXPLICIT  # fmt: skip


@pytest.mark.parametrize(("task", "key", "value"), CASES, ids=[f"{t}.{k}" for t, k, _ in CASES])
def test_a_size_above_its_bound_is_one_error_naming_it(task, key, value, tmp_path):
    data = _params()
    _set(data[task], key, value)
    with pytest.raises(ParamsError, match=f"parameter '{task}.{key}"):
        _load(task, data, tmp_path)


def test_every_int_size_in_a_ranges_table_has_an_upper_bound():
    """An int param that sizes something has a finite bound; the few that size nothing are listed here."""
    unbounded_ok = {"prepare.min_freq", "data.flickr_min_count", "predict.top_k", "train.warmup_epochs",
                    "train.patience"}  # fmt: skip
    for task in ("news", "coco-caption", "pokemon", "dynconv", "twolayer", "vit", "vlm-caption", "mygo"):
        bounded = {k for k, _ in _ranged(task)}
        config = importlib.import_module(f"stages.{task.replace('-', '_')}.config")
        p, _ = config.load(ROOT / "params.yaml")
        for prefix, ranges in _tables(task):
            for key in ranges:
                value = p
                for part in (prefix + key).split("."):
                    value = value[part] if isinstance(value, dict) else getattr(value, part)
                if isinstance(value, int) and key not in unbounded_ok:
                    assert prefix + key in bounded, f"{task}.{prefix}{key} has no upper bound"
