import sys
import textwrap

import pytest
import yaml

from stages.common.params import CommonParams, from_dict
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
    from_dict(CommonParams, preset.pop("common", {}), "common")  # a preset may set common too (kernels)
    params = from_dict(PokemonParams, preset, "pokemon")
    assert params.data.source.startswith("dir:")


def test_run_and_print_need_no_word_splitting(tmp_path, monkeypatch):
    from stages.common import preset

    (tmp_path / "presets").mkdir()
    (tmp_path / "params.yaml").write_text("t: {model: {width: 1}}\nshared: {data: {source: sample}}\n")
    (tmp_path / "presets" / "t.yaml").write_text(
        textwrap.dedent("""\
        big:
          model: {width: 8, sizes: [1, 2, 2, 2], name: a b, mults: "[1,2]", flag: true}
          shared: {data: {source: 'dir:x y'}}
        """)
    )
    assert preset.overrides("t", "big", tmp_path) == [
        "t.model.width=8", "t.model.sizes=[1,2,2,2]", "t.model.name='a b'", "t.model.mults=[1,2]", "t.model.flag=true",
        "shared.data.source='dir:x y'",
    ]  # fmt: skip
    assert preset.shell_line(["-S", "t.model.sizes=[1,2,2,2]"]) == "-S 't.model.sizes=[1,2,2,2]'"
    calls = []
    monkeypatch.setattr(preset.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        preset.main(["t", "big", "--run", "--temp", "-S", "common.threads=1"])
    assert exit_.value.code == 0
    expected = [arg for item in preset.overrides("t", "big") for arg in ("-S", item)]
    assert calls == [[sys.executable, "-m", "dvc", "exp", "run", *expected, "--temp", "-S", "common.threads=1"]]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_print_gives_the_same_arguments_in_bash_and_zsh(shell, tmp_path):
    import shutil
    import subprocess

    from stages.common import preset

    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "t.yaml").write_text('big: {model: {sizes: [1, 2, 2, 2], name: "it\'s a b"}}\n')
    (tmp_path / "t.model.sizes=1").write_text("")  # a file that the unquoted [1,2,2,2] glob would match
    script = f'eval "set -- $({sys.executable} -m stages.common.preset t big --print -n x)"; printf "%s\\n" "$@"'
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([shell, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [*preset.dvc_args([("t", "big")], tmp_path), "-n", "x"]
    assert out.stdout.splitlines()[1] == "t.model.sizes=[1,2,2,2]"
