"""params.yaml is the one place a default lives: every params dataclass's defaults equal its section there.

A reader of a `config.py` then learns the real defaults, and a value changed in one place and not the other
fails here. The comparison builds each section twice, once from the dataclass defaults alone and once from
params.yaml through `from_dict` (the loader every stage uses), and compares every value, nested sections,
lists and dicts of named sub-configs (coco-caption's `configs`, mygo's `models`) included. A field that
params.yaml leaves out (e.g. `convs_per_block` of a mygo model that does not set it) has one source, its
dataclass default, and compares equal on both sides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stages.coco_caption import config as coco_caption
from stages.common.params import CommonParams, from_dict, read_params_file, to_dict
from stages.ddpm import config as ddpm
from stages.dip_ddpm import config as dip_ddpm
from stages.dynconv import config as dynconv
from stages.mini_imagenet import config as mini_imagenet
from stages.mygo import config as mygo
from stages.news import config as news
from stages.pokemon import config as pokemon
from stages.twolayer import config as twolayer
from stages.vit import config as vit
from stages.vlm_caption import config as vlm_caption
from tests.tiny import ROOT

SECTIONS: dict[str, type] = {
    "common": CommonParams,
    pokemon.TASK: pokemon.PokemonParams,
    news.TASK: news.NewsParams,
    mygo.TASK: mygo.MygoParams,
    coco_caption.TASK: coco_caption.CocoCaptionParams,
    vit.TASK: vit.VitParams,
    ddpm.TASK: ddpm.DdpmParams,
    vlm_caption.TASK: vlm_caption.VlmCaptionParams,
    mini_imagenet.TASK: mini_imagenet.MiniImagenetParams,
    dynconv.TASK: dynconv.DynconvParams,
    dip_ddpm.TASK: dip_ddpm.DipDdpmParams,
    twolayer.TASK: twolayer.TwolayerParams,
}


def differences(default: Any, real: Any, key: str) -> list[str]:
    """'key: default D, params.yaml R' for every leaf where the two differ (recursing into mappings)."""
    if isinstance(default, dict) and isinstance(real, dict):
        found = [f"{key}.{k}: only in params.yaml" for k in real if k not in default]
        found += [f"{key}.{k}: only in the dataclass default" for k in default if k not in real]
        for k in default.keys() & real.keys():
            found += differences(default[k], real[k], f"{key}.{k}")
        return found
    same = default == real and type(default) is type(real)
    return [] if same else [f"{key}: dataclass default {default!r}, params.yaml {real!r}"]


def test_every_section_of_params_yaml_has_a_schema_here():
    assert set(read_params_file(ROOT / "params.yaml")) == set(SECTIONS)


@pytest.mark.parametrize("section", SECTIONS)
def test_dataclass_defaults_equal_params_yaml(section):
    schema = SECTIONS[section]
    assert dataclasses.is_dataclass(schema)
    default = to_dict(schema())
    real = to_dict(from_dict(schema, read_params_file(ROOT / "params.yaml")[section], where=section))
    assert differences(default, real, section) == []


def test_the_comparison_sees_a_nested_difference():
    assert differences({"a": {"b": [1, 2]}, "c": 1.0}, {"a": {"b": [1, 3]}, "c": 1.0}, "s") == [
        "s.a.b: dataclass default [1, 2], params.yaml [1, 3]"
    ]
    assert differences({"c": 1}, {"c": 1.0}, "s") == ["s.c: dataclass default 1, params.yaml 1.0"]
