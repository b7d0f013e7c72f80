"""Every case issue 25 found ("What was found"), as written, each asserting the right outcome.

Refusals run as processes through the shared contract (tests/fuzz/contract.py): status 1, exactly one `error:`
line (stderr's last) naming the user's file or param, no traceback, every file there before byte-identical and
nothing new left. Cases that must succeed, or whose outcome lies below the CLI (decoded pixel values, a trainer
falling back from a corrupt checkpoint, loaders given crafted files), are plain tests further down.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from fuzz.contract import Case, assert_case, call, error_line, run_cases, run_module, src, task_params
from fuzz.formats import (
    bomb_png,
    coco_source,
    ddpm_source,
    grey16_png,
    image_bytes,
    mini_imagenet_source,
    mygo_csv_source,
    news_course_source,
    pokemon_source,
    tiny_section,
    vit_folders_source,
    vit_pickles_source,
    vlm_source,
)
from fuzz.mutations import MARKER, RunsCode  # MARKER: what a crafted file creates if it is ever unpickled

P, N, M, C, V, D, L = "pokemon", "news", "mygo", "coco-caption", "vit", "ddpm", "vlm-caption"
MI, DC, TL = "mini-imagenet", "dynconv", "twolayer"
NEWS_RUN: dict[str, Path] = {}  # the trained tiny news model the predict cases copy (the news_run fixture)


def tiny(task: str, **data) -> dict:
    """The task's tiny params (CPU, one thread, no MLflow), with more `data:` keys."""
    section = tiny_section(task)
    if data:
        section["data"] = {**section.get("data", {}), **data}
    return task_params(task, section, {"device": "cpu", "threads": 1})


def dir_source(task: str, **data):
    return lambda folder: tiny(task, source=f"dir:{src(folder)}", **data)


def no_marker(folder: Path) -> None:
    assert not (folder / MARKER).exists(), "a user's file ran code"


# ------------------------------------------------------------------ data lost: news-predict --output


def news_predict_layout(folder: Path) -> None:
    """The trained tiny news run, a user's texts.json, and a user's folder `out` holding a file."""
    for part in ("data/news", "models/news"):
        shutil.copytree(NEWS_RUN["root"] / part, folder / part, dirs_exist_ok=True)
    (src(folder) / "out").mkdir(parents=True)
    (src(folder) / "out" / "keep.txt").write_text("the user's own file\n")
    (src(folder) / "texts.json").write_text(json.dumps([{"id": i, "text": f"match report {i}"} for i in range(3)]))


def news_predict(output: str):
    return lambda folder: ("--input", str(src(folder) / "texts.json"), "--output", output.format(src=src(folder)))


# ------------------------------------------------------------------ code execution, zero-byte models


def crafted_models(task: str, names: tuple[str, ...], content: str):
    """`<folder>/shared run/models/<task>/<name>.pt`: a torch file that runs a command when unpickled, or empty."""

    def make(folder: Path) -> None:
        import torch

        models = folder / "shared run" / "models" / task
        models.mkdir(parents=True)
        for name in names:
            if content == "crafted":
                torch.save({"model": RunsCode(folder / MARKER)}, models / f"{name}.pt")
            else:
                (models / f"{name}.pt").write_bytes(b"")
        list_file(folder)

    return make


def list_file(folder: Path) -> None:
    """A valid course list (`<path> <label>`) with one image."""
    src(folder).mkdir(exist_ok=True)
    (src(folder) / "img.png").write_bytes(image_bytes(size=(16, 16)))
    (src(folder) / "list.txt").write_text("img.png 0\n")


def score_args(folder: Path) -> tuple[str, ...]:
    """A score tool's arguments: the user's list, and `--root` the shared run."""
    return (str(src(folder) / "list.txt"), "--root", str(folder / "shared run"))


def twolayer_prepared(folder: Path) -> None:
    """What twolayer-score reads before the models: mini-imagenet's prepared classes.json; then empty models."""
    (folder / "data/mini-imagenet/prepared").mkdir(parents=True)
    (folder / "data/mini-imagenet/prepared/classes.json").write_text(
        json.dumps({"classes": ["a", "b"], "image_size": 16})
    )
    (folder / "models/twolayer").mkdir(parents=True, exist_ok=True)
    for name in ("twolayer", "resnet34"):
        (folder / "models/twolayer" / f"{name}.pt").write_bytes(b"")
    list_file(folder)


def crafted_cifar(folder: Path) -> None:
    import pickle

    vit_pickles_source(src(folder))
    (src(folder) / "data_batch_1").write_bytes(pickle.dumps({b"data": RunsCode(folder / MARKER), b"labels": []}))


# ------------------------------------------------------------------ reading outside the source


def secret(folder: Path) -> Path:
    """A valid image beside the source, outside it."""
    (folder / "outside").mkdir(exist_ok=True)
    (folder / "outside" / "secret.png").write_bytes(image_bytes(seed=999))
    return folder / "outside" / "secret.png"


def mygo_row(how: str):
    """mygo's train.csv gets a row naming an image outside the source: `../`, absolute, or through a link."""

    def make(folder: Path) -> None:
        mygo_csv_source(src(folder))
        target = secret(folder)
        if how == "dotdot":
            row = os.path.relpath(target, src(folder))
        elif how == "absolute":
            row = str(target)
        else:
            (src(folder) / "link.png").symlink_to(target)
            row = "link.png"
        with (src(folder) / "train.csv").open("a") as f:
            f.write(f"{row},anon\n")

    return make


def ddpm_link(kind: str):
    def make(folder: Path) -> None:
        ddpm_source(src(folder))
        target = secret(folder)
        if kind == "file":
            (src(folder) / "link.png").symlink_to(target)
        else:
            (src(folder) / "linked").symlink_to(target.parent, target_is_directory=True)

    return make


def mini_imagenet_lines(edit):
    """The valid mini-ImageNet layout (and an image beside it, outside), train.txt's lines through `edit`."""

    def make(folder: Path) -> None:
        mini_imagenet_source(src(folder))
        secret(folder)
        train = src(folder) / "train.txt"
        train.write_text("".join(edit(train.read_text().splitlines(keepends=True))))

    return make


def first_line_path(path: str):
    return lambda lines: [f"{path} {lines[0].split()[1]}\n", *lines[1:]]


def first_line_label(label: str):
    return lambda lines: [f"{lines[0].split()[0]} {label}\n", *lines[1:]]


def same_image_two_labels(lines: list[str]) -> list[str]:
    path, label = lines[0].split()
    return [*lines, f"{path} {(int(label) + 2) % 10}\n"]


# ------------------------------------------------------------------ tracebacks, wrong results, messages


def latin1_classes(folder: Path) -> None:
    mini_imagenet_source(src(folder))
    names = (src(folder) / "classes.txt").read_text().splitlines()
    names[0] = names[0] + " café"
    (src(folder) / "classes.txt").write_bytes("\n".join(names).encode("latin-1") + b"\n")


def news_train_json(text: str):
    def make(folder: Path) -> None:
        news_course_source(src(folder))
        (src(folder) / "News_train.json").write_text(text)

    return make


def news_label(literal: str) -> str:
    records = [{"id": i, "text": f"story {i}", "label": "sports" if i % 2 else "world"} for i in range(8)]
    return json.dumps(records).replace('"label": "sports"', f'"label": {literal}', 1)


def ddpm_bomb(folder: Path) -> None:
    ddpm_source(src(folder))
    (src(folder) / "bomb.png").write_bytes(bomb_png())


def vlm_bomb(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    vlm_source(src(folder))
    path = src(folder) / "train_data.parquet"
    rows = pq.read_table(path).to_pylist()
    image = rows[1]["image"]
    rows[1]["image"] = {**image, "bytes": bomb_png()} if isinstance(image, dict) else bomb_png()
    pq.write_table(pa.Table.from_pylist(rows), path)


def output_parent_is_a_file(folder: Path) -> None:
    shutil.rmtree(folder / "data" / P)
    (folder / "data" / P).write_text("a file where the stage writes its folder\n")


def output_folder_read_only(folder: Path) -> None:
    (folder / "data" / P).chmod(0o555)


def coco_dataset(file: str, key: str, change):
    def make(folder: Path) -> None:
        import h5py

        coco_source(src(folder))
        with h5py.File(src(folder) / file, "a") as f:
            new = change(f[key][()])
            del f[key]
            f[key] = new

    return make


def with_nan(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    a[0, 0] = np.nan
    return a


def minus_one_first(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0] = -1
    return a


def ddpm_text_zip(folder: Path) -> None:
    (folder / "data/ddpm/raw/images.zip").write_text("this is a text file, not a zip archive\n")


def mini_imagenet_zip(member: str | None):
    """The course's images.zip as the source: a text file (member None), or a zip with one escaping member."""

    def make(folder: Path) -> None:
        src(folder).mkdir()
        archive = src(folder) / "images.zip"
        if member is None:
            archive.write_text("not a zip, whatever the name says\n")
            return
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("train.txt", "images/a/x.jpg 0\n")
            zf.writestr(member, "escaped\n")

    return make


def zip_source(folder: Path) -> dict:
    return tiny(MI, source=str(src(folder) / "images.zip"))


def empty_root(folder: Path) -> None:
    """`--root` names a folder with no run in it (no params.yaml, no models), the user's list beside it."""
    (folder / "shared run").mkdir()
    list_file(folder)


def twolayer_lr(folder: Path) -> None:
    (folder / "params.yaml").write_text(
        "common: {mlflow: false, device: cpu, threads: 1}\ntwolayer:\n  train:\n    lr: 1.0e+309\n"
    )


def coco_lr_nan() -> dict:
    params = tiny(C)
    params[C]["configs"] = {"c": {"num_heads": 2, "num_layers": 1, "lr": float("nan")}}
    return params


def with_param(task: str, key: str, value: float) -> dict:
    """The task's tiny params with `key` (dotted, inside the task's section) set to `value`."""
    params = tiny(task)
    *parents, last = key.split(".")
    target = params[task]
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return params


ISSUE_CASES = [
    # --- data lost (2): news-predict --output an existing folder, or the input itself
    Case("news-predict-output-is-a-folder", "stages.news.predict", tiny(N), lambda f: (f"{src(f) / 'out'}", "is a folder"),
         make=news_predict_layout, args=news_predict("{src}/out")),
    Case("news-predict-output-is-the-input", "stages.news.predict", tiny(N), lambda f: (f"{src(f) / 'texts.json'}", "is also an input"),
         make=news_predict_layout, args=news_predict("{src}/texts.json")),
    Case("news-predict-output-is-the-input-spelt-otherwise", "stages.news.predict", tiny(N), "is also an input",
         make=news_predict_layout, args=news_predict("user files/../user files/./texts.json")),
    # --- code execution (1): a crafted model file given to a score tool; the CIFAR pickles (vit's format)
    Case("dynconv-score-crafted-model", "stages.dynconv.score", {}, lambda f: str(f / "shared run/models/dynconv/dynamic.pt"),
         make=crafted_models(DC, ("dynamic", "naive"), "crafted"), args=score_args, check=no_marker),
    Case("vit-crafted-cifar-pickle", "stages.vit.download", dir_source(V), lambda f: str(src(f) / "data_batch_1"),
         make=crafted_cifar, check=no_marker),
    # --- reading outside the folder the user named (2)
    Case("mygo-csv-row-dotdot", "stages.mygo.download", dir_source(M, train_csv="train.csv"),
         lambda f: str(src(f) / "train.csv"), make=mygo_row("dotdot")),
    Case("mygo-csv-row-absolute", "stages.mygo.download", dir_source(M, train_csv="train.csv"),
         lambda f: str(src(f) / "train.csv"), make=mygo_row("absolute")),
    Case("mygo-csv-row-link-out", "stages.mygo.download", dir_source(M, train_csv="train.csv"),
         lambda f: str(src(f) / "link.png"), make=mygo_row("link")),  # the source's own check names the link
    Case("ddpm-link-to-a-file-outside", "stages.ddpm.download", dir_source(D), lambda f: str(src(f) / "link.png"),
         make=ddpm_link("file")),
    Case("ddpm-link-to-a-folder-outside", "stages.ddpm.download", dir_source(D), lambda f: str(src(f) / "linked"),
         make=ddpm_link("folder")),
    Case("mini-imagenet-list-row-dotdot", "stages.mini_imagenet.download", dir_source(MI), lambda f: str(src(f) / "train.txt"),
         make=mini_imagenet_lines(first_line_path("../outside/secret.png"))),
    # --- NaN and infinity pass every range check: each param the issue names
    Case("pokemon-lr-nan", "stages.pokemon.download", with_param(P, "train.lr", float("nan")), "'pokemon.train.lr'"),
    Case("mygo-cnn-dropout-nan", "stages.mygo.download", with_param(M, "models.cnn.dropout", float("nan")),
         "'mygo.models.cnn.dropout'"),
    Case("ddpm-lr-nan", "stages.ddpm.download", with_param(D, "train.lr", float("nan")), "'ddpm.train.lr'"),
    Case("coco-config-lr-nan", "stages.coco_caption.download", coco_lr_nan(), "'coco-caption.configs.c.lr'"),
    Case("vit-lr-inf", "stages.vit.download", with_param(V, "train.lr", float("inf")), "'vit.train.lr'"),
    Case("twolayer-lr-1e309", "stages.twolayer.train", {}, "'twolayer.train.lr'", make=twolayer_lr, args=("twolayer",)),
    # --- tracebacks instead of one line (11)
    Case("mini-imagenet-latin1-classes", "stages.mini_imagenet.download", dir_source(MI), lambda f: str(src(f) / "classes.txt"),
         make=latin1_classes),
    Case("news-train-json-100000-nested", "stages.news.download", dir_source(N), lambda f: str(src(f) / "News_train.json"),
         make=news_train_json("[" * 100_000 + "]" * 100_000)),
    Case("ddpm-decompression-bomb", "stages.ddpm.download", dir_source(D), lambda f: str(src(f) / "bomb.png"), make=ddpm_bomb),
    Case("vlm-decompression-bomb-in-parquet", "stages.vlm_caption.download", dir_source(L),
         lambda f: str(src(f) / "train_data.parquet"), make=vlm_bomb),
    Case("output-folder-is-a-file", "stages.pokemon.download", tiny(P), "data/pokemon", make=output_parent_is_a_file),
    pytest.param(Case("output-folder-read-only", "stages.pokemon.download", tiny(P), "data/pokemon", make=output_folder_read_only),
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")),
    Case("dynconv-score-zero-byte-models", "stages.dynconv.score", {}, lambda f: str(f / "shared run/models/dynconv/dynamic.pt"),
         make=crafted_models(DC, ("dynamic", "naive"), "empty"), args=score_args),
    Case("twolayer-score-zero-byte-models", "stages.twolayer.score", tiny(TL), "models/twolayer/",
         make=twolayer_prepared, args=lambda f: (str(src(f) / "list.txt"),)),
    Case("ddpm-image-size-65536", "stages.ddpm.download", with_param(D, "prepare.image_size", 65536), "'ddpm.prepare.image_size'"),
    # --- accepted, but wrong
    Case("mini-imagenet-one-image-two-labels", "stages.mini_imagenet.download", dir_source(MI), lambda f: str(src(f) / "train.txt"),
         make=mini_imagenet_lines(same_image_two_labels)),
    Case("coco-nan-in-features", "stages.coco_caption.download", dir_source(C, feature_dim=8),
         lambda f: str(src(f) / "train2014_vgg16_fc7_pca.h5"), make=coco_dataset("train2014_vgg16_fc7_pca.h5", "features", with_nan)),
    Case("news-json-nan-label", "stages.news.download", dir_source(N), lambda f: str(src(f) / "News_train.json"),
         make=news_train_json(news_label("NaN"))),
    Case("news-json-infinity-label", "stages.news.download", dir_source(N), lambda f: str(src(f) / "News_train.json"),
         make=news_train_json(news_label("Infinity"))),
    # --- one line, but misleading
    Case("ddpm-images-zip-is-text", "stages.ddpm.prepare", tiny(D), "data/ddpm/raw/images.zip", make=ddpm_text_zip),
    Case("mini-imagenet-zip-is-text", "stages.mini_imagenet.download", zip_source, lambda f: str(src(f) / "images.zip"),
         make=mini_imagenet_zip(None)),
    Case("mini-imagenet-zip-slip-names-the-archive", "stages.mini_imagenet.download", zip_source,
         lambda f: (str(src(f) / "images.zip"), "../evil.txt"), make=mini_imagenet_zip("../evil.txt")),
    Case("coco-val-image-idxs-negative", "stages.coco_caption.download", dir_source(C, feature_dim=8),
         lambda f: (str(src(f) / "coco2014_captions.h5"), "'val_image_idxs'", "image -1"),
         make=coco_dataset("coco2014_captions.h5", "val_image_idxs", minus_one_first)),
    Case("mini-imagenet-label-1_0-verbatim", "stages.mini_imagenet.download", dir_source(MI), "'1_0'",
         make=mini_imagenet_lines(first_line_label("1_0"))),
    Case("twolayer-score-names-the-root", "stages.twolayer.score", tiny(TL), lambda f: str(f / "shared run"),
         make=empty_root, args=score_args),
]  # fmt: skip
CASES = [c.values[0] if hasattr(c, "values") else c for c in ISSUE_CASES]


@pytest.fixture(scope="module")
def news_run(tmp_path_factory) -> Path:
    """A tiny trained news model (download, prepare, one epoch), for the cases that run news-predict."""
    from tiny import COMMON, tiny_task

    from stages.news import config, download, prepare, train

    root = tmp_path_factory.mktemp("news-run")
    p = tiny_task("news", config.NewsParams)
    p.train.epochs = 1
    paths = config.Paths(root)
    for stage in (download, prepare, train):
        call(lambda stage=stage: stage.run(p, COMMON, paths))
    NEWS_RUN["root"] = root
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory, news_run) -> dict:
    return run_cases(CASES, tmp_path_factory.mktemp("issue-25"))


@pytest.mark.parametrize("case", ISSUE_CASES, ids=[c.id for c in CASES])
def test_issue_case_is_one_error_line_and_nothing_lost(case: Case, results: dict) -> None:
    assert_case(case, results[case.id])


# ------------------------------------------------------------------ cases that must succeed


@pytest.mark.parametrize("name", ["pixel_color.txt", "colormap.txt"])
def test_pokemon_utf8_byte_order_mark_is_accepted(name: str, tmp_path: Path) -> None:
    """Saved by a Windows editor: a UTF-8 byte-order mark before the first number is valid UTF-8 text."""
    pokemon_source(src(tmp_path))
    (src(tmp_path) / name).write_bytes(b"\xef\xbb\xbf" + (src(tmp_path) / name).read_bytes())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny(P, source=f"dir:{src(tmp_path)}")))
    result = run_module("stages.pokemon.download", (), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "data/pokemon/raw/pixel_color.txt").is_file()


def test_ddpm_link_inside_the_source_is_followed(tmp_path: Path) -> None:
    """The stated policy's other half: a link (file or folder) that stays inside the source is read."""
    ddpm_source(src(tmp_path))
    (src(tmp_path) / "again.jpg").symlink_to("000000.jpg")
    (src(tmp_path) / "more again").symlink_to("more", target_is_directory=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny(D, source=f"dir:{src(tmp_path)}")))
    result = run_module("stages.ddpm.download", (), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    names = zipfile.ZipFile(tmp_path / "data/ddpm/raw/images.zip").namelist()
    assert len(names) == 6, names  # 4 images, the linked file and the linked folder's image


def test_news_predict_on_an_id_text_csv(news_run: Path, tmp_path: Path) -> None:
    """An `id,text` CSV (no labels: texts to label) is labelled, or refused with what the columns must be;
    never "label 'text' is not a class number"."""
    news_predict_layout(tmp_path)
    (src(tmp_path) / "texts.csv").write_text("id,text\n1,the striker scored twice\n2,the minister resigned\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny(N)))
    out = tmp_path / "predictions.csv"
    result = run_module(
        "stages.news.predict", ("--input", str(src(tmp_path) / "texts.csv"), "--output", str(out)), tmp_path
    )
    if result.returncode == 0:
        assert len(out.read_text().splitlines()) == 3  # a header and one row per text
    else:
        line = error_line(result)
        assert str(src(tmp_path) / "texts.csv") in line and "label 'text'" not in line


# ------------------------------------------------------------------ below the CLI


def grey16_source(build, folder: Path) -> None:
    """`build`'s valid source with every image replaced by a 16-bit PNG at 46% grey (30146 of 65535)."""
    from PIL import Image

    build(folder)
    for image in folder.rglob("*"):
        if image.suffix.lower() in (".png", ".jpg", ".jpeg"):
            with Image.open(image) as img:
                size = img.size
            image.write_bytes(grey16_png(0.46, size))


def run_stages(task: str, package: str, root: Path, *steps: str) -> None:
    import importlib

    (root / "params.yaml").write_text(yaml.safe_dump(tiny(task, source=f"dir:{src(root)}")))
    config = importlib.import_module(f"stages.{package}.config")
    for step in steps:
        module = importlib.import_module(f"stages.{package}.{step}")
        outcome = call(lambda module=module: module.run(*config.load(root / "params.yaml"), config.Paths(root)))
        assert outcome.error is None, outcome.error


@pytest.mark.parametrize("task", ["mini-imagenet", "ddpm", "vit"])
def test_16_bit_grey_decodes_to_117_in_the_prepared_arrays(task: str, tmp_path: Path) -> None:
    """46% grey stays 46% grey (~117 of 255) through download and prepare; it used to clip to white (255)."""
    if task == "mini-imagenet":
        grey16_source(mini_imagenet_source, src(tmp_path))
        run_stages(task, "mini_imagenet", tmp_path, "download", "prepare")
        with np.load(tmp_path / "data/mini-imagenet/prepared/train.npz") as z:
            images = z["images"]
    elif task == "ddpm":
        grey16_source(ddpm_source, src(tmp_path))
        run_stages(task, "ddpm", tmp_path, "download", "prepare")
        images = np.load(tmp_path / "data/ddpm/prepared/images.npy")
    else:
        grey16_source(vit_folders_source, src(tmp_path))
        run_stages(task, "vit", tmp_path, "download")
        from stages.vit.data import read_split

        images, _ = read_split(tmp_path / "data/vit/raw", "train", 2)
    assert images.size and abs(float(images.mean()) - 117.3) < 1.5, float(images.mean())
    assert int(images.max()) - int(images.min()) <= 2  # flat grey, no channel clipped


def loaders() -> dict:
    """Every function that reads a model or checkpoint file a user may be handed (a DVC remote, a shared run)."""
    from stages.coco_caption.model import load_model as coco
    from stages.common import checkpoint, cnn
    from stages.ddpm import config as ddpm_config
    from stages.ddpm.model import load_model as ddpm
    from stages.dip_ddpm.reverse import load_prior
    from stages.dynconv.model import load as dynconv
    from stages.mygo.model import load as mygo
    from stages.news.model import load_model as news
    from stages.pokemon.pdr import load as pokemon_classifier
    from stages.twolayer.model import load_model as twolayer
    from stages.vit.model import load_model as vit

    return {
        "checkpoint.load": checkpoint.load,
        "cnn pretrained weights": lambda path: cnn.torchvision_model("resnet18", 4, weights=str(path)),
        "coco-caption": coco,
        "ddpm": lambda path: ddpm(ddpm_config.Paths(path.parents[2])),  # <root>/models/ddpm/model.pt
        "dip-ddpm prior": load_prior,
        "dynconv": dynconv,
        "mygo": mygo,
        "news": news,
        "pokemon classifier": pokemon_classifier,
        "twolayer": twolayer,
        "vit": vit,
    }


LOADERS = ["checkpoint.load", "cnn pretrained weights", "coco-caption", "ddpm", "dip-ddpm prior", "dynconv", "mygo",
           "news", "pokemon classifier", "twolayer", "vit"]  # fmt: skip


def model_file(kind: str, path: Path, marker: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "crafted":
        torch.save({"model": RunsCode(marker)}, path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"state": {"w": torch.zeros(64, 64)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:  # another kind of file under the model's name
        path.write_text("not a model\n")


@pytest.mark.parametrize("kind", ["crafted", "empty", "truncated", "text"])
@pytest.mark.parametrize("loader", LOADERS)
def test_model_loaders_refuse_bad_files_by_name_and_never_run_code(loader: str, kind: str, tmp_path: Path) -> None:
    """A crafted file whose unpickling would run a command, a zero-byte file, one cut short, a text file: each
    is a DataError naming it (`run <stage> first` / `delete it`), and the command never runs."""
    path = tmp_path / "models" / "ddpm" / "model.pt" if loader == "ddpm" else tmp_path / "shared" / "model.pt"
    model_file(kind, path, tmp_path / MARKER)
    outcome = call(lambda: loaders()[loader](path))
    assert not (tmp_path / MARKER).exists(), "a model file ran code"
    assert outcome.error is not None and str(path) in str(outcome.error), outcome.error


def test_corrupt_newest_checkpoint_is_moved_aside_and_the_previous_resumed(tmp_path: Path) -> None:
    """A resume checkpoint cut short: one `warning:` line naming it, the file renamed aside (not deleted), and
    training resumes from the previous checkpoint."""
    import torch

    from stages.common import checkpoint

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in (1, 2):
        checkpoint.save(tmp_path, epoch, model, optimizer, None, epoch=epoch)
    newest = tmp_path / "epoch-00002.pt"
    cut = newest.read_bytes()[:200]
    newest.write_bytes(cut)
    outcome = call(lambda: checkpoint.resume(tmp_path, model, optimizer, None))
    warnings = [line for line in outcome.stderr.splitlines() if line.startswith("warning: ")]
    assert outcome.error is None
    assert len(warnings) == 1 and str(newest) in warnings[0], outcome.stderr
    assert not newest.exists() and cut in [f.read_bytes() for f in tmp_path.iterdir()]  # moved aside, kept
    assert checkpoint.resume(tmp_path, model, optimizer, None)["epoch"] == 1


def test_news_training_restarts_past_a_truncated_checkpoint(news_run: Path, tmp_path: Path, monkeypatch) -> None:
    """The issue's case: a trainer whose newest checkpoint under .cache/checkpoints/ is cut short finishes with
    one `warning:` line naming the file, instead of torch's traceback."""
    from tiny import COMMON, tiny_task

    from stages.news import config, train

    shutil.copytree(news_run / "data", tmp_path / "data")
    p = tiny_task("news", config.NewsParams)
    paths = config.Paths(tmp_path)
    real_evaluate, calls = train.evaluate, []

    def crash_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        call(lambda: train.run(p, COMMON, paths))
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    (saved,) = paths.checkpoints.rglob("epoch-*.pt")
    saved.write_bytes(saved.read_bytes()[:500])
    outcome = call(lambda: train.run(p, COMMON, paths))
    assert outcome.error is None, outcome.error
    warnings = [line for line in outcome.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and str(saved) in warnings[0], outcome.stderr
    assert paths.model.is_file()


def test_no_case_wrote_beside_its_folder(results: dict) -> None:
    """Nothing escaped a case folder (a zip member `../evil.txt`, a link): their common parent holds only them."""
    (base,) = {folder.parent for *_, folder in results.values()}
    assert sorted(p.name for p in base.iterdir()) == sorted(results)
