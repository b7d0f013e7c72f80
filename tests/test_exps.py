"""`python -m stages.common.exps`: one task's experiments in 120 columns, in a temporary git + DVC repo where a
fast stand-in for news's training stage (same stage name, params section and metrics file) had two
`dvc exp run -S` ablations; and the long form when many params differ."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.common import exps
from stages.common.headlines import headlines, spreads

ROOT = Path(__file__).resolve().parents[1]

TRAIN = """\
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))["news"]["train"]
os.makedirs("metrics", exist_ok=True)
os.makedirs("plots/news", exist_ok=True)
json.dump({"val_accuracy": round(0.5 + 10 * p["lr"], 4), "val_macro_f1": round(0.4 + p["lr"], 4), "val_rows": 10},
          open("metrics/news.json", "w"))
with open("plots/news/train_history.csv", "w") as f:
    f.write("epoch,train_loss,val_loss\\n")
    for e in range(1, p["epochs"] + 1):
        f.write(f"{e},{1 / (e * p['lr'] * 100):.4f},{1.1 / (e * p['lr'] * 100):.4f}\\n")
"""

DVC_YAML = """\
stages:
  news-train:
    cmd: python train.py
    deps: [train.py]
    params: [news.train, common.threads]
    outs:
      - plots/news/train_history.csv: {cache: false}
    metrics:
      - metrics/news.json: {cache: false}
plots:
  - news loss:
      x: epoch
      y:
        plots/news/train_history.csv: [train_loss, val_loss]
"""


def env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}  # fmt: skip


def sh(repo: Path, *cmd: str) -> str:
    result = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repo with the stand-in stage, its baseline committed as `main`, and experiments lr02, ep5."""
    repo = tmp_path_factory.mktemp("exps") / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(TRAIN)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("common: {threads: 2, mlflow: true}\nnews:\n  seed: 0\n"
                                      "  train: {lr: 0.01, epochs: 3}\npokemon: {seed: 1}\n")  # fmt: skip
    (repo / "vendor" / "vega").mkdir(parents=True)
    shutil.copy2(ROOT / "vendor/vega/dvc_plots_offline.html", repo / "vendor/vega/dvc_plots_offline.html")
    (repo / "measured").mkdir()  # the measured spreads (news: dev acc ± 0.0013 over seeds 0/1/2)
    shutil.copy2(ROOT / "measured/spreads.json", repo / "measured/spreads.json")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.email", "test@example.com")
    sh(repo, "git", "config", "user.name", "test")
    dvc = [sys.executable, "-m", "dvc"]
    sh(repo, *dvc, "init", "-q")
    sh(repo, *dvc, "config", "core.analytics", "false")
    sh(repo, *dvc, "config", "plots.html_template", "../vendor/vega/dvc_plots_offline.html")
    sh(repo, *dvc, "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline")
    # the first ablation through a preset: `preset --run` calls `dvc exp run -S news.train.lr=0.02 -n lr02`
    (repo / "presets").mkdir()
    (repo / "presets/news.yaml").write_text("lr02: {train: {lr: 0.02}}\n")
    sh(repo, sys.executable, "-m", "stages.common.preset", "news", "lr02", "--run", "-q", "-n", "lr02")
    sh(repo, "git", "checkout", "-q", "--", "params.yaml")  # the next ablation starts from the baseline's params
    sh(repo, *dvc, "exp", "run", "-q", "-n", "ep5", "-S", "news.train.epochs=5")
    return repo


def test_show_puts_both_experiments_side_by_side_in_120_columns(repo):
    text = exps.run(["news"], root=str(repo))
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120, text
    rows = {line.split()[0]: line for line in lines if line.strip()}
    assert {"lr02", "ep5", "main", "workspace"} <= set(rows), text
    header = next(line for line in lines if line.startswith("experiment"))
    # the params that differ (task prefix dropped; unchanged ones and other tasks' left out) and the headlines
    assert header.split() == ["experiment", "train.lr", "train.epochs", "dev", "acc", "dev", "macro", "F1"], text
    assert not {"pokemon.seed", "seed", "common.threads", "common.mlflow"} & set(header.split())
    assert rows["lr02"].split()[1:4] == ["0.02", "3", "0.7*"]  # +0.1 is beyond 2 std (0.0013): starred
    assert rows["ep5"].split()[1:4] == ["0.01", "5", "0.6"]
    assert "±0.0013" in text and "run-to-run std over seeds 0/1/2 at sample scale (measured/spreads.json)" in text


def test_diff_lists_changed_params_and_headlines_against_their_spread(repo):
    text = exps.run(["news", "diff", "main", "lr02"], root=str(repo))
    assert max(map(len, text.splitlines())) <= 120, text
    assert "train.lr" in text and "train.epochs" not in text
    dev = next(line for line in text.splitlines() if line.startswith("dev acc"))
    assert dev.split()[2:7] == ["0.6", "0.7", "+0.1", "±0.0013", "beyond"] and "better" in dev
    same = exps.run(["news", "diff", "main", "ep5"], root=str(repo))
    assert "train.epochs" in same and "beyond" not in same  # the metrics did not move


def test_metrics_and_plots_of_one_task(repo, tmp_path):
    text = exps.run(["news", "metrics"], root=str(repo))
    assert "news:val_accuracy" in text and max(map(len, text.splitlines())) <= 120
    out = tmp_path / "page"
    message = exps.run(["news", "plots", "main", "lr02", "ep5", "-o", str(out)], root=str(repo))
    assert "index.html" in message
    html = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html
    assert html.count("var spec = ") == 1  # one chart ("news loss"), the three revisions overlaid in it
    spec = json.loads(html.split("var spec = ", 1)[1].split(";\n", 1)[0])
    assert {v["rev"] for v in spec["data"]["values"]} == {"main", "lr02", "ep5"}


def test_mistakes_are_one_error_line(repo):
    for args in (["nosuch"], ["news", "diff", "main", "no-such-exp"]):
        result = subprocess.run([sys.executable, "-m", "stages.common.exps", *args], cwd=repo, env=env(),
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_many_params_and_experiments_switch_to_the_long_form_within_the_width():
    view = exps.TaskView("pokemon", ["pokemon", "common.threads"], ["metrics/pokemon.json"], [],
                         headlines("pokemon"), spreads("pokemon", ROOT))  # fmt: skip
    base = {f"model.parameter_number_{i}": i for i in range(12)}

    def entry(name: str, shift: int, fid: float) -> dict:
        params = {"pokemon": {"model": {k.split(".")[1]: v + shift for k, v in base.items()}}, "common": {"threads": 2}}
        return {"rev": name, "name": name, "data": {"params": {"params.yaml": {"data": params}},
                "metrics": {"metrics/pokemon.json": {"data": {"fid": fid, "pdr": 0.7}}}}}  # fmt: skip

    baseline = entry("main", 0, 60.0)
    baseline["experiments"] = [{"name": f"exp-{i}", "revs": [entry(f"exp-{i}", i, 60.0 + i)]} for i in range(1, 10)]
    rows = exps.exp_rows([{"rev": "workspace", "data": baseline["data"]}, baseline], view)
    lines = exps.render_show(rows, view, width=120)
    assert max(map(len, lines)) <= 120, "\n".join(lines)
    text = "\n".join(lines)
    assert all(f"exp-{i}" in text for i in range(1, 10)) and "model.parameter_number_11" in text
    assert "(baseline)" in text and "65*" in text and "61" in text and "61*" not in text  # 2 std = 4.6


def test_a_stage_belongs_to_the_longest_task_name_it_starts_with():
    tasks = ["pokemon", "ddpm", "dip-ddpm", "mini-imagenet", "coco-caption"]
    assert exps.task_of("pokemon-fid-reference", tasks) == "pokemon"
    assert exps.task_of("dip-ddpm-restore@dip-ddpm", tasks) == "dip-ddpm"
    assert exps.task_of("ddpm-train", tasks) == "ddpm"
    assert exps.task_of("coco-caption-train@h2_l2_lr1e-4", tasks) == "coco-caption"
    assert exps.task_of("coco-train", tasks) == ""
