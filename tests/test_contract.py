"""The stage contract (DESIGN.md): a stage's code deps are its module's import closure, and its
`params:` cover every key it reads, as recorded while `dvc repro` runs the whole pipeline on tiny params."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

from dvc.dependency.param import ParamsDependency
from test_pipeline import ROOT, copy_repo, set_params
from tiny import write_tiny_params

from stages.common import cli, contract, params
from stages.vit import config as vit_config


def test_code_deps_equal_each_stage_modules_import_closure():
    assert contract.deps_problems(ROOT) == []


def copy_code(dest: Path) -> Path:
    shutil.copytree(ROOT / "stages", dest / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    return dest


def test_an_undeclared_import_or_a_stale_dep_fails_the_check(tmp_path):
    root = copy_code(tmp_path)
    package = root / "stages/vit/package.py"
    # an import inside a function counts: the stage runs that code
    package.write_text(package.read_text() + "\n\ndef _later():\n    from stages.common import fid  # noqa: F401\n")
    problems = contract.deps_problems(root)
    assert any(p.startswith("vit-package: imports but does not declare stages/common/fid.py") for p in problems)
    # transitively: a module every vit stage imports pulls its new import into all of them
    cfg = root / "stages/vit/config.py"
    cfg.write_text(cfg.read_text() + "\nfrom stages.common import bleu  # noqa: E402,F401\n")
    flagged = {p.split(":")[0] for p in contract.deps_problems(root) if "stages/common/bleu.py" in p}
    assert flagged == {n for n in contract.stage_modules(root) if n.startswith("vit-")}
    # and the other way: a declared file the stage no longer imports
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("      - stages/vit/package.py\n", "      - stages/vit/package.py\n      - stages/common/fid_typo.py\n", 1))  # fmt: skip
    assert any(
        "vit-package: declares but does not import stages/common/fid_typo.py" in p for p in contract.deps_problems(root)
    )
    contract.fix(root)
    assert contract.deps_problems(root) == []


def test_reads_are_recorded_as_full_keys_and_bookkeeping_is_not():
    with params.recording() as keys:
        p = params.from_dict(vit_config.VitParams, {"train": {"lr": 0.01}}, "vit")
        assert p.train.lr == 0.01 and p.model.dim == 64
        params.to_dict(p)  # logging every value is not a read
    assert keys == {"vit.train.lr", "vit.model.dim"}
    outside = params.from_dict(vit_config.VitParams, {}, "vit")
    assert type(outside) is vit_config.VitParams  # no recording, no wrapper


def test_a_stage_run_writes_what_it_read(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("vit: {train: {epochs: 3}}\n")
    monkeypatch.setenv(cli.RECORD_ENV, str(tmp_path / "rec"))
    monkeypatch.setattr(sys, "argv", ["stages/vit/train.py", "variant"])
    cli.main(lambda: params.load_params("vit", vit_config.VitParams, tmp_path / "params.yaml").train.epochs)
    (record,) = (tmp_path / "rec").iterdir()
    assert json.loads(record.read_text())["keys"] == ["vit.train.epochs"]


def test_params_problems_name_undeclared_and_unread_keys():
    problems = contract.params_problems("vit-train", {"vit.train.lr", "common.threads"}, ["vit.train", "vit.seed"])
    assert problems == [
        "vit-train: reads params key 'common.threads' but does not declare it",
        "vit-train: declares params 'vit.seed' but never reads it",
    ]


def run_stage_in_process(cmd: str) -> None:
    """`python -m module args` as DVC would run it, but in this process (no interpreter start per stage)."""
    module, *args = cmd.removeprefix("python -m ").split()
    saved = sys.argv
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        raise AssertionError(f"{cmd}: exited with {exit.code}") from None
    finally:
        sys.argv = saved


def test_every_stage_declares_exactly_the_params_it_reads(tmp_path, monkeypatch):
    """The whole pipeline on tiny params, in DVC's order, each stage recording the keys it read."""
    import networkx as nx
    from dvc.repo import Repo

    repo = copy_repo(tmp_path / "repo")
    write_tiny_params(repo)
    set_params(repo, {"common": {"mlflow": False}})
    stages = list(reversed(list(nx.topological_sort(Repo(str(repo)).index.graph))))
    records = tmp_path / "records"
    monkeypatch.chdir(repo)
    monkeypatch.setenv(cli.RECORD_ENV, str(records))
    problems = []
    for stage in stages:
        run_stage_in_process(stage.cmd)
        argv = stage.cmd.removeprefix("python -m ")
        record = records / f"{argv}.json"
        if not record.is_file():
            problems.append(f"{stage.name}: no record of its params reads ({argv})")
            continue
        read = set(json.loads(record.read_text())["keys"])
        declared = [k for dep in stage.deps if isinstance(dep, ParamsDependency) for k in dep.params]
        problems += contract.params_problems(stage.name, read, declared)
    assert problems == [], "\n".join(problems)


def test_a_stage_that_starts_reading_a_new_key_fails_the_check(tmp_path):
    """The test of the test: vit-download edited to read `vit.model.dim` is caught by the same comparison."""
    from dvc.repo import Repo

    repo = copy_repo(tmp_path / "repo")
    write_tiny_params(repo)
    download = repo / "stages/vit/download.py"
    old = "    d = p.data\n"
    download.write_text(download.read_text().replace(old, old + "    print(p.model.dim)\n", 1))
    env = {**os.environ, "PYTHONPATH": str(repo), cli.RECORD_ENV: str(tmp_path / "records")}
    subprocess.run([sys.executable, "-m", "stages.vit.download"], cwd=repo, env=env, check=True, capture_output=True)
    read = set(json.loads((tmp_path / "records/stages.vit.download.json").read_text())["keys"])
    (stage,) = [s for s in Repo(str(repo)).index.stages if s.name == "vit-download"]
    declared = [k for dep in stage.deps if isinstance(dep, ParamsDependency) for k in dep.params]
    assert contract.params_problems("vit-download", read, declared) == [
        "vit-download: reads params key 'vit.model.dim' but does not declare it"
    ]


def test_vars_of_a_section_reads_all_its_fields():
    with params.recording() as keys:
        p = params.from_dict(vit_config.VitParams, {}, "vit")
        vars(p.train)
    assert keys == {f"vit.train.{k}" for k in vars(vit_config.TrainParams())}
