"""Every dynconv stage as a function on tiny params; the dynamic layer's invariances; golden outputs; resuming;
the score command; bad inputs giving one `error:` line."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import COMMON, tiny_task

from stages.common import checkpoint, cli
from stages.common.headlines import detail_path, metrics_view
from stages.common.io import DataError
from stages.common.params import ParamsError, from_dict
from stages.dynconv import config, evaluate, package, score, train
from stages.dynconv.model import DynamicConv2d, build, sample_masks, subset_mask
from stages.mini_imagenet import config as data_config
from stages.mini_imagenet import download, prepare


def tiny_params() -> config.DynconvParams:
    return tiny_task("dynconv", config.DynconvParams)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The tiny shared data (mini-imagenet sample, 3/2/2 per class, 16 px) once for the module."""
    root = tmp_path_factory.mktemp("dynconv")
    p, paths = tiny_task("mini-imagenet", data_config.MiniImagenetParams), data_config.Paths(root)
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    return root


def _paths(root, data_root) -> config.Paths:
    (root / "data").mkdir(parents=True)
    (root / "data" / "mini-imagenet").symlink_to(data_root / "data" / "mini-imagenet")
    return config.Paths(root)


@pytest.fixture
def tiny(data_root, tmp_path):
    """Tiny dynconv params from the real defaults, common params without MLflow, paths sharing the tiny data."""
    return tiny_params(), COMMON, _paths(tmp_path, data_root)


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> config.Paths:
    """Both models trained once on the tiny params (2 runs × 2 epochs each) for the module's tests."""
    paths = _paths(tmp_path_factory.mktemp("trained"), data_root)
    for name in config.MODELS:
        summary = train.run(tiny_params(), COMMON, paths, name)
        assert summary["runs"] == 2 and len(summary["final_val_accuracy_rgb"]) == 2
    return paths


def test_pipeline_end_to_end(trained, capsys) -> None:
    p, common, paths = tiny_params(), COMMON, trained
    for name in config.MODELS:
        assert paths.model(name).is_file() and paths.history(name).is_file()
        assert paths.timings(f"dynconv-train-{name}").is_file()
    assert json.loads(paths.train_metrics("naive").read_text())["channel_sampling"] == "none"
    r = evaluate.run(p, common, paths)
    assert set(r["accuracy"]["dynamic"]) == set(config.SUBSETS) and r["second_size"] == 20
    assert r["dynamic_extra_flops_vs_naive"] < 0.05 and r["cost"]["dynamic"]["flops"] > r["cost"]["naive"]["flops"]
    assert json.loads(detail_path(paths.root, config.TASK).read_text()) == json.loads(json.dumps(r))
    assert json.loads(paths.metrics.read_text()) == json.loads(json.dumps(metrics_view(config.TASK, r)))
    assert "ms_per_image" in json.loads(paths.timings("dynconv-evaluate").read_text())
    assert "seconds" not in paths.metrics.read_text() and "ms_per" not in paths.metrics.read_text()
    assert (paths.plots / "subsets.png").is_file() and len(paths.subsets_csv.read_text().splitlines()) == 15
    text = package.run(p, common, paths)
    assert "## Cost analysis" in text and "| GB |" in text and paths.report.is_file()
    # the score command on the test list gives evaluate's numbers
    capsys.readouterr()
    result = score.cli([str(paths.raw / "test.txt"), "--root", str(paths.root), "--threads", "1"])
    out = capsys.readouterr().out
    assert "| R |" in out and "dynamic" in out and result["_images"] == 20
    assert result["dynamic"]["RGB"] == pytest.approx(r["accuracy_runs"]["dynamic"]["RGB"], abs=1e-6)


def _states(paths: config.Paths, name: str) -> list[dict]:
    return torch.load(paths.model(name), weights_only=True)["states"]


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_outputs_deterministic(tiny, trained) -> None:
    p, common, paths = tiny
    train.run(p, common, paths, "naive")
    assert _same(_states(paths, "naive"), _states(trained, "naive"))
    assert paths.history("naive").read_bytes() == trained.history("naive").read_bytes()


def test_consistency_changes_the_subset_training_only(tiny, trained) -> None:
    """train.consistency > 0 adds the RGB view's KL: the dynamic model (random subsets) trains differently."""
    p, common, paths = tiny
    p.train.consistency = 1.0
    p.train.runs = 1
    train.run(p, common, paths, "dynamic")
    assert not _same(_states(paths, "dynamic")[:1], _states(trained, "dynamic")[:1])


def _record(experiments: list[tuple[str, dict]]) -> dict:
    """A record (stages/common/record.py) of experiments, each (name, its detail report)."""
    runs = [
        {"experiment": name, "commit": "abcdef0" + "0" * 33, "params": {"mini-imagenet.data.source": "dir:x"},
         "details": {"dynconv_detail": detail}, "timings": {"dynconv-train-dynamic": {"train_seconds": 5.0, "threads": 1}}}
        for name, detail in experiments
    ]  # fmt: skip
    return {"command": "python -m stages.common.record dynconv " + " ".join(n for n, _ in experiments), "runs": runs}


def test_report_real_data_section(trained, tmp_path) -> None:
    """The recorded real-data experiments (measured/dynconv_<preset>*.json) become the report's real-data tables."""
    p, common, paths = tiny_params(), COMMON, trained
    r = evaluate.run(p, common, paths)
    assert "Not recorded yet" in package.run(p, common, paths)
    paths.real_data.parent.mkdir(parents=True, exist_ok=True)
    paths.real_data.write_text(json.dumps(_record([("dc-main", r)])))
    text = package.run(p, common, paths).split("## Real data")[1].split("## Findings")[0]
    assert "record dynconv dc-main" in text and "| B |" in text and "worst single channel" in text
    assert "dynamic 5 s at 1 thread(s)" in text and "dedicated" not in text
    ded = json.loads(json.dumps(r))
    ded["channel_sampling"]["naive"] = "B"
    ded["accuracy_runs"]["naive"]["B"] = [0.2] * len(ded["accuracy_runs"]["naive"]["B"])
    paths.dedicated.write_text(json.dumps(_record([("dc-ded-B", ded)])))
    text = package.run(p, common, paths).split("## Real data")[1].split("## Findings")[0]
    dyn, rgb = r["accuracy"]["dynamic"]["B"], r["accuracy"]["naive"]["RGB"]
    row = f"| B | 0.200 | {dyn:.3f} | {100 * (dyn - 0.2):+.1f} points | {100 * 0.2 / rgb:.1f} % |"
    assert "record dynconv dc-ded-B" in text and row in text, text
    paths.real_data.unlink()
    paths.dedicated.unlink()


def test_resume_after_interruption(tiny, trained, monkeypatch) -> None:
    p, common, paths = tiny
    real_save, calls = checkpoint.save, []

    def interrupting_save(folder, epoch, /, *args, **kwargs):
        real_save(folder, epoch, *args, **kwargs)
        calls.append(epoch)
        if len(calls) == 3:  # run 2, epoch 1
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        train.run(p, common, paths, "dynamic")
    assert not paths.model("dynamic").exists()
    monkeypatch.setattr(checkpoint, "save", real_save)
    train.run(p, common, paths, "dynamic")
    assert _same(_states(paths, "dynamic"), _states(trained, "dynamic"))  # resumed = uninterrupted
    assert not list(paths.checkpoints.rglob("*.pt"))


def test_dynamic_layer_shapes_and_independence() -> None:
    torch.manual_seed(0)
    layer = DynamicConv2d(3, 8, kernels=3, hidden=8).eval()
    for size in (16, 27):
        x = torch.randn(2, 3, size, size)
        for s in config.SUBSETS:
            assert layer(x, subset_mask(s, 2)).shape == (2, 8, size, size)
    x = torch.randn(4, 3, 16, 16)
    for s in config.SINGLE:
        other = x.clone()
        for i, ch in enumerate(config.CHANNELS):
            if ch != s:
                other[:, i] = torch.randn(4, 16, 16) * 5  # anything in the absent channels
        mask = subset_mask(s, 4)
        assert torch.equal(layer(x, mask), layer(other, mask))
    # redistribution (K = 1, so the attention is 1): one channel present acts like that channel copied to all three
    one = DynamicConv2d(3, 8, kernels=1, hidden=4, pooled=False).eval()
    plain = DynamicConv2d(3, 8, kernels=1, hidden=4, pooled=False, redistribute=False).eval()
    plain.load_state_dict(one.state_dict())
    grey = x[:, 1:2].expand(4, 3, 16, 16)
    assert torch.allclose(one(x, subset_mask("G", 4)), plain(grey, torch.ones(4, 3)), atol=1e-5)
    net = build("dynamic", tiny_params(), 5).eval()
    assert net(torch.randn(2, 3, 16, 16), subset_mask("G", 2)).shape == net(torch.randn(2, 3, 33, 21)).shape


def test_hierarchical_sampling() -> None:
    g = torch.Generator().manual_seed(0)
    masks = sample_masks(6000, "hierarchical", g)
    sizes = masks.sum(1)
    assert sizes.min() >= 1 and all(abs(float((sizes == k).float().mean()) - 1 / 3) < 0.03 for k in (1, 2, 3))
    singles = masks[sizes == 1].mean(0)
    assert torch.allclose(singles, torch.full((3,), 1 / 3), atol=0.04)
    assert sample_masks(5, "none", g).eq(1).all()
    assert sample_masks(500, "uniform", g).sum(1).min() >= 1
    assert sample_masks(4, "GB", g).tolist() == [[0.0, 1.0, 1.0]] * 4  # a dedicated model's one subset


def test_dedicated_subset_param() -> None:
    """A fixed subset is a valid channel_sampling; anything else names the key."""
    raw = {"models": {"naive": {"channel_sampling": "B"}}}
    assert from_dict(config.DynconvParams, raw, "dynconv").models.naive.channel_sampling == "B"
    with pytest.raises(ParamsError, match="dynconv.models.naive.channel_sampling"):
        from_dict(config.DynconvParams, {"models": {"naive": {"channel_sampling": "BR"}}}, "dynconv")


GOLDEN = {"dynamic": [-0.13675, -0.289005, -0.07904], "naive": [0.078401, 0.037832, -0.072286]}


@pytest.mark.parametrize("name", config.MODELS)
def test_golden_outputs(name) -> None:
    """Fixed seed, fixed input: the logits must not drift (an unintended change to either model shows here)."""
    torch.manual_seed(0)
    net = build(name, tiny_params(), 3).eval()
    x = torch.linspace(-2, 2, 2 * 3 * 12 * 12).view(2, 3, 12, 12)
    with torch.no_grad():
        out = net(x, subset_mask("RB", 2))[0]
    assert out.tolist() == pytest.approx(GOLDEN[name], abs=1e-4), out.tolist()


def test_bad_params_and_inputs(tiny, capsys) -> None:
    p, common, paths = tiny
    with pytest.raises(ParamsError, match="model name"):
        train.run(p, common, paths)
    p.backbone.width = 0
    with pytest.raises(ParamsError, match="dynconv.backbone.width"):
        train.run(p, common, paths, "naive")
    p.backbone.width, p.models.dynamic.kernels = 4, 0
    with pytest.raises(ParamsError, match="kernels"):
        train.run(p, common, paths, "dynamic")
    p.evaluate.second_size = 2
    with pytest.raises(ParamsError, match="second_size"):
        evaluate.run(p, common, paths)
    p.evaluate.second_size = 20
    with pytest.raises(DataError, match="file not found; run dynconv-train first"):
        evaluate.run(p, common, paths)


def _one_error_line(fn, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(fn)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_score_bad_list_one_error_line(trained, capsys, tmp_path) -> None:
    paths = trained
    bad = tmp_path / "bad.txt"
    first = (paths.raw / "test.txt").read_text().splitlines()[0].split()[0]  # images/<class>/<file>
    (tmp_path / first).parent.mkdir(parents=True)
    (tmp_path / first).write_bytes((paths.raw / first).read_bytes())
    bad.write_text(f"{first} 0\n{first} 42\n")
    line = _one_error_line(lambda: score.cli([str(bad), "--root", str(paths.root)]), capsys)
    assert f"{bad}:2" in line and "label 42" in line
    missing = tmp_path / "missing.txt"
    missing.write_text("images/nope.jpg 1\n")
    assert f"{missing}:1" in _one_error_line(lambda: score.cli([str(missing), "--root", str(paths.root)]), capsys)
    line = _one_error_line(lambda: score.cli([str(bad), "--root", str(tmp_path / "nowhere")]), capsys)
    assert "file not found; run dynconv-train first" in line


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a model"])
def test_score_damaged_model_file_one_error_line(trained, capsys, tmp_path, damage) -> None:
    """A model file that is empty, cut short or another torch file: one error naming it, nothing run."""
    root = tmp_path / "repo"
    (root / "models" / "dynconv").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "mini-imagenet").symlink_to(trained.root / "data" / "mini-imagenet")
    paths = config.Paths(root)
    for name in config.MODELS:
        paths.model(name).write_bytes(trained.model(name).read_bytes())
    good = trained.model("dynamic").read_bytes()
    bad = {"empty": b"", "truncated": good[: len(good) // 2], "not a model": None}[damage]
    if bad is None:
        torch.save({"weights": torch.zeros(2)}, paths.model("dynamic"))
    else:
        paths.model("dynamic").write_bytes(bad)
    line = _one_error_line(lambda: score.cli([str(trained.raw / "test.txt"), "--root", str(root)]), capsys)
    assert line.startswith(f"error: {paths.model('dynamic')}: ")


def test_saved_model_is_plain_values(trained) -> None:
    """The model file loads with weights_only=True (no code runs) and rebuilds the models."""
    from stages.dynconv.model import load

    saved = torch.load(trained.model("dynamic"), weights_only=True)
    assert isinstance(saved["backbone"], dict) and isinstance(saved["variant"], dict)
    models, blob = load(trained.model("dynamic"))
    assert len(models) == len(blob["states"]) == 2
