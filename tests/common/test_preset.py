import pytest
import yaml

from stages.common.params import from_dict
from stages.common.preset import preset_args
from stages.pokemon.config import PokemonParams
from tests.conftest import ROOT


def test_preset_prints_dvc_set_param_arguments(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "t.yaml").write_text(
        "big:\n  model: {width: 8, sizes: [1, 2]}\n  data: {source: 'dir:x'}\n"
    )
    assert preset_args("t", "big", tmp_path) == [
        "-S t.model.width=8",
        "-S t.model.sizes=[1,2]",
        "-S t.data.source=dir:x",
    ]
    with pytest.raises(SystemExit, match="no preset 'small'"):
        preset_args("t", "small", tmp_path)
    with pytest.raises(SystemExit, match="no presets for task 'u'"):
        preset_args("u", "big", tmp_path)


@pytest.mark.parametrize("name", ["course", "strong"])
def test_pokemon_presets_are_valid_params(name):
    preset = yaml.safe_load((ROOT / "presets" / "pokemon.yaml").read_text())[name]
    params = from_dict(PokemonParams, preset, "pokemon")
    assert params.data.source.startswith("dir:")
