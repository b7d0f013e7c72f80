"""A sweep of bad params and bad input files across every task, as a new user would make them.

Each case runs one stage as a process (`python -m stages.<task>.<step>`) in its own folder with a small
params.yaml, after a "good run" left outputs there. It must exit 1 with exactly one `error:` line, the
last one on stderr, naming the param or the user's own file (and line), never a temporary path, with no
traceback; and every file present before (the earlier outputs) must be byte-identical after, with nothing
new left behind. The cases run in parallel (they are processes), so the sweep takes seconds, not minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fuzz.contract import Case, assert_case, default_sigint, run_cases, run_module, src, stage_env, task_of, task_params

# ------------------------------------------------------------------ the user's bad files


def pokemon_files(folder: Path, bad_line: int | None = None, bad: bytes = b"\xff") -> None:
    """The course's two files; line `bad_line` of pixel_color.txt starts with the token `bad`."""
    d = src(folder)
    d.mkdir()
    (d / "colormap.txt").write_text("\n".join(f"{i} {i} {i}" for i in range(167)) + "\n")
    lines = [" ".join(["1"] * 400).encode()] * 792
    if bad_line is not None:
        lines[bad_line - 1] = b" ".join([bad] + [b"1"] * 399)
    (d / "pixel_color.txt").write_bytes(b"\n".join(lines) + b"\n")


def pokemon_zip(folder: Path) -> None:
    pokemon_files(folder)
    with zipfile.ZipFile(folder / "course.zip", "w") as zf:
        for name in ("colormap.txt", "pixel_color.txt"):
            zf.write(src(folder) / name, name)


def news_json(folder: Path, train: bytes | None = None) -> None:
    d = src(folder)
    d.mkdir()
    records = [{"id": i, "text": f"story number {i} about things", "label": "sports" if i % 2 else "world"}
               for i in range(12)]  # fmt: skip
    (d / "News_train.json").write_bytes(train or json.dumps(records, indent=1).encode())
    (d / "News_test.json").write_text(json.dumps([{"id": i, "text": f"test story {i}"} for i in range(4)]))


def news_non_utf8(folder: Path) -> None:
    news_json(folder, b'[\n {"id": 0, "text": "caf\xe9 news", "label": "world"}\n]\n')


def news_list_label(folder: Path) -> None:
    records = [{"id": 0, "text": "one story", "label": "world"}, {"id": 1, "text": "two", "label": ["a", "b"]}]
    news_json(folder, json.dumps(records).encode())


def news_ag_csv(folder: Path) -> None:
    d = src(folder)
    d.mkdir()
    (d / "train.csv").write_bytes(b'"1","Title","Body"\n"2","Caf\xe9","Body two"\n')
    (d / "test.csv").write_bytes(b'"1","Title","Body"\n')


def mygo_csv(folder: Path) -> None:
    d = src(folder)
    (d / "train" / "a").mkdir(parents=True)
    (d / "train.csv").write_bytes(b"file,label\nx\xff.png,a\n")


def coco_layout(folder: Path, key: str, value: Callable) -> None:
    import h5py

    from stages.coco_caption import data

    d = src(folder)
    data.make_sample(d, 30, 0, 16)
    with h5py.File(d / data.FILES["captions"], "a") as f:
        new = value(f[key][()])
        del f[key]
        f[key] = new


def vit_images(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    d = src(folder)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (d / split / cls).mkdir(parents=True)
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(d / split / cls / "0.png")
    (d / "train" / "dog" / "1.png").write_bytes(b"not a png")


def ddpm_images(folder: Path) -> None:
    d = src(folder)
    d.mkdir()
    (d / "face.jpg").write_bytes(b"\xff\xd8 truncated")


def vlm_layout(folder: Path) -> None:
    from stages.vlm_caption import data

    d = src(folder)
    data.write_layout(d, data.make_sample(4, 2, 2, 0))
    (d / data.FILES["submission"]).write_bytes(b'[{"idx": 0, "output": "caf\xe9"}]')


def dir_source(task: str, **data) -> Callable[[Path], dict]:
    """Params reading the case's own `user files` folder as a `dir:` source (plus more `data:` keys)."""
    return lambda folder: task_params(task, {"data": {"source": f"dir:{src(folder)}", **data}})


def url_source(folder: Path) -> dict:
    return task_params(P, {"data": {"source": f"url:{(folder / 'course.zip').as_uri()}", "sha256": "0" * 64}})


def not_yaml(folder: Path) -> None:
    (folder / "params.yaml").write_text("pokemon: {train: [unclosed\n")


# ------------------------------------------------------------------ the cases

P, N, M, C, V, D, L = "pokemon", "news", "mygo", "coco-caption", "vit", "ddpm", "vlm-caption"
CASES = [
    # --- pokemon: params, the course's two text files (dir: and url:)
    Case("pokemon-epochs-0", "stages.pokemon.download", task_params(P, {"train": {"epochs": 0}}), "'pokemon.train.epochs' is 0"),
    Case("pokemon-batch-0", "stages.pokemon.download", task_params(P, {"train": {"batch_size": 0}}), "'pokemon.train.batch_size' is 0"),
    Case("pokemon-dropout-2", "stages.pokemon.download", task_params(P, {"model": {"dropout": 2.0}}), "'pokemon.model.dropout' is 2.0"),
    Case("pokemon-heads", "stages.pokemon.download", task_params(P, {"model": {"d_model": 30, "n_head": 4}}), "'pokemon.model.n_head' (4)"),
    Case("pokemon-sha-not-hex", "stages.pokemon.download", task_params(P, {"data": {"sha256": "abc"}}), "'pokemon.data.sha256'"),
    Case("pokemon-rotary-odd", "stages.pokemon.download", task_params(P, {"model": {"arch": "mistral", "d_model": 18, "n_head": 2}}),
         "must be even for arch mistral"),
    Case("pokemon-threads", "stages.pokemon.download", task_params(P, {}, {"threads": -4}), "'common.threads' is -4"),
    Case("pokemon-unknown-key", "stages.pokemon.download", task_params(P, {"modle": {}}), "unknown parameter 'pokemon.modle'"),
    Case("pokemon-source-kind", "stages.pokemon.download", task_params(P, {"data": {"source": "ftp:x"}}), "'pokemon.data.source'"),
    Case("params-not-yaml", "stages.pokemon.download", {}, "params.yaml:2: not valid YAML (expected ',' or ']'", make=not_yaml),
    Case("pokemon-non-utf8", "stages.pokemon.download", dir_source(P), lambda f: f"{src(f) / 'pixel_color.txt'}:5: not UTF-8",
         make=lambda f: pokemon_files(f, 5)),
    Case("pokemon-bad-index", "stages.pokemon.download", dir_source(P), lambda f: f"{src(f) / 'pixel_color.txt'}:7: palette index 999",
         make=lambda f: pokemon_files(f, 7, b"999")),
    Case("pokemon-missing-dir", "stages.pokemon.download", dir_source(P), lambda f: f"{src(f)}: source folder not found"),
    Case("pokemon-url-wrong-sha", "stages.pokemon.download", url_source, "sha256 mismatch", make=pokemon_zip),
    # --- news: params, the course's JSON, AG News CSV
    Case("news-epochs-0", "stages.news.download", task_params(N, {"train": {"epochs": 0}}), "'news.train.epochs' is 0"),
    Case("news-heads", "stages.news.download", task_params(N, {"model": {"d_model": 30, "nhead": 4}}), "'news.model.nhead' (4)"),
    Case("news-max-len", "stages.news.download", task_params(N, {"prepare": {"max_len": 128}}), "'news.prepare.max_len' (128)"),
    Case("news-json-non-utf8", "stages.news.download", dir_source(N), lambda f: f"{src(f) / 'News_train.json'}:2: not UTF-8", make=news_non_utf8),
    Case("news-list-label", "stages.news.download", dir_source(N), lambda f: f"{src(f) / 'News_train.json'}: record 2: label must be",
         make=news_list_label),
    Case("news-csv-non-utf8", "stages.news.download", dir_source(N), lambda f: f"{src(f) / 'train.csv'}:2: not UTF-8", make=news_ag_csv),
    # --- mygo: params, CSV lists
    Case("mygo-batch-0", "stages.mygo.download", task_params(M, {"train": {"batch_size": 0}}), "'mygo.train.batch_size' is 0"),
    Case("mygo-model-dropout", "stages.mygo.download", task_params(M, {"models": {"cnn": {"dropout": 1.5}}, "ensemble": ["cnn"]}), "'mygo.models.cnn.dropout' is 1.5"),
    Case("mygo-cnn-too-deep", "stages.mygo.download", task_params(M, {"models": {"cnn": {"depth": 9}}, "ensemble": ["cnn"]}), "'mygo.models.cnn.depth' is 9"),
    Case("mygo-csv-non-utf8", "stages.mygo.download", dir_source(M, train_csv="train.csv"), lambda f: f"{src(f) / 'train.csv'}:2: not UTF-8", make=mygo_csv),
    # --- coco-caption: params, the course's HDF5 layout
    Case("coco-epochs-neg", "stages.coco_caption.download", task_params(C, {"train": {"epochs": -1}}), "'coco-caption.train.epochs' is -1"),
    Case("coco-heads", "stages.coco_caption.download", task_params(C, {"configs": {"x": {"num_heads": 3, "num_layers": 1, "lr": 1e-3}}}),
         "'coco-caption.configs.x.num_heads' (3)"),
    Case("coco-evaluate-before-prepare", "stages.coco_caption.evaluate", task_params(C, {}),
         "data/coco-caption/prepared/data.npz: file not found; run coco-caption-prepare first"),
    Case("coco-captions-Nx0", "stages.coco_caption.download", dir_source(C), lambda f: f"{src(f) / 'coco2014_captions.h5'}: 'train_captions'",
         make=lambda f: coco_layout(f, "train_captions", lambda a: a[:, :0])),
    Case("coco-float-idxs", "stages.coco_caption.download", dir_source(C), lambda f: f"{src(f) / 'coco2014_captions.h5'}: 'train_image_idxs' must be integers",
         make=lambda f: coco_layout(f, "train_image_idxs", lambda a: a.astype("float64"))),
    # --- vit: params, image folders
    Case("vit-epochs-neg", "stages.vit.download", task_params(V, {"train": {"epochs": -2}}), "'vit.train.epochs' is -2"),
    Case("vit-patch", "stages.vit.download", task_params(V, {"model": {"patch_size": 5}}), "'vit.model.patch_size' (5) must divide 32"),
    Case("vit-warmup-epochs", "stages.vit.download", task_params(V, {"train": {"epochs": 2, "warmup_epochs": 5}}),
         "'vit.train.warmup_epochs' (5) exceeds"),
    Case("vit-bad-image", "stages.vit.download", dir_source(V), lambda f: f"{src(f) / 'train' / 'dog' / '1.png'}: ", make=vit_images),
    # --- ddpm: params, image folders
    Case("ddpm-image-size-0", "stages.ddpm.download", task_params(D, {"prepare": {"image_size": 0}}), "'ddpm.prepare.image_size' is 0"),
    Case("ddpm-compare-5000", "stages.ddpm.download", task_params(D, {"evaluate": {"compare": ["ddim:5000"]}}), "'ddpm.evaluate.compare[0]' is 'ddim:5000'"),
    Case("ddpm-sample-steps", "stages.ddpm.download", task_params(D, {"sample": {"steps": 2000}}), "'ddpm.sample.steps' (2000)"),
    Case("ddpm-bad-image", "stages.ddpm.download", dir_source(D), lambda f: str(src(f) / "face.jpg"), make=ddpm_images),
    # --- vlm-caption: params, the course's parquet + JSON files
    Case("vlm-steps-0", "stages.vlm_caption.download", task_params(L, {"train": {"max_steps": 0}}), "'vlm-caption.train.max_steps'"),
    Case("vlm-lora-dropout", "stages.vlm_caption.download", task_params(L, {"lora": {"dropout": 1.5}}), "'vlm-caption.lora.dropout' is 1.5"),
    Case("vlm-json-non-utf8", "stages.vlm_caption.download", dir_source(L), lambda f: f"{src(f) / 'sample_submission.json'}:1: not UTF-8", make=vlm_layout),
]  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    return run_cases(CASES, tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_error_line_and_nothing_lost(case: Case, results: dict) -> None:
    assert_case(case, results[case.id])


def test_cases_cover_every_task() -> None:
    assert {task_of(c.module) for c in CASES} == {P, N, M, C, V, D, L}


def test_upper_case_sha256_is_accepted_and_an_interrupted_downloads_leftovers_are_removed(tmp_path) -> None:
    """The twin cases: a right input rejected (an upper-case sha256), and what a killed download left behind."""
    from stages.common.io import file_sha256

    pokemon_zip(tmp_path)
    sha = file_sha256(tmp_path / "course.zip").upper()
    params = task_params(P, {"data": {"source": f"url:{(tmp_path / 'course.zip').as_uri()}", "sha256": sha}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    killed = [tmp_path / "data/pokemon/.raw.4194305.k1ll3d00.tmp", tmp_path / "data/pokemon/.raw.abcd1234.tmp"]
    for leftover in killed:
        (leftover / "raw").mkdir(parents=True)
        (leftover / "raw" / "pixel_color.txt").write_text("half\n")
    result = run_module("stages.pokemon.download", (), tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "data/pokemon").iterdir()) == ["raw"]
    assert (tmp_path / "data/pokemon/raw/pixel_color.txt").read_bytes() == (
        src(tmp_path) / "pixel_color.txt"
    ).read_bytes()


def test_ctrl_c_is_one_line_and_exit_130(tmp_path) -> None:
    """A user's Ctrl-C (SIGINT) during a stage: one `error:` line, status 130, no traceback."""
    import signal

    (tmp_path / "params.yaml").write_text("common: {mlflow: false}\n")
    script = (
        "from stages.common.cli import main\nimport time\nmain(lambda: (print('ready', flush=True), time.sleep(60)))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=stage_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # a user's terminal delivers Ctrl-C even if this test run ignores SIGINT
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: interrupted; outputs left as they were (a trainer resumes from its last checkpoint)"
    ]
