"""The TF-IDF bigram baseline of news-evaluate, token dropout and the seed ensemble, on tiny params."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from news_helpers import tiny_params
from tiny import COMMON

from stages.news import download, evaluate, package, predict, prepare, train
from stages.news.config import ModelParams
from stages.news.data import load_prepared
from stages.news.model import CLS_ID, UNK_ID, Ensemble, NewsClassifier, load_model, predict_logits


def test_tfidf_baseline_and_margin_in_metrics_and_report(common, paths) -> None:
    p = tiny_params()
    p.train.epochs = 1
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths)
    predict.run(p, common, paths)
    metrics = evaluate.run(p, common, paths)
    saved = json.loads((paths.metrics / "news.json").read_text())
    assert saved["tfidf_val_accuracy"] == pytest.approx(metrics["tfidf_val_accuracy"], abs=1e-6)
    assert metrics["majority_class_accuracy"] < metrics["tfidf_val_accuracy"] <= 1.0
    assert metrics["margin_over_tfidf"] == pytest.approx(metrics["val_accuracy"] - metrics["tfidf_val_accuracy"])
    assert "tfidf_test_accuracy" not in metrics  # the sample's test rows are unlabelled
    package.run(p, COMMON, paths)
    report = paths.report.read_text()
    assert f"{metrics['tfidf_val_accuracy']:.4f}" in report and "margin over the TF-IDF baseline" in report


def test_tfidf_baseline_golden_and_test_split_when_labelled(paths) -> None:
    p = tiny_params()
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    splits, _ = load_prepared(paths.prepared)
    texts = json.loads((paths.prepared / "texts.json").read_text())
    assert [len(texts[k]) for k in ("train", "val", "test")] == [len(splits[k]["labels"]) for k in splits]
    first = evaluate.tfidf_baseline(texts, splits, 2, 10.0, 0)
    assert first == evaluate.tfidf_baseline(texts, splits, 2, 10.0, 0)  # deterministic
    assert first == {"val": pytest.approx(0.611111, abs=1e-6)}  # fixed-seed golden on the tiny sample corpus
    splits["test"] = splits["val"]  # a labelled test split is scored too
    texts["test"] = texts["val"]
    assert evaluate.tfidf_baseline(texts, splits, 2, 10.0, 0)["test"] == pytest.approx(first["val"])


def test_baseline_params_are_range_checked(tmp_path) -> None:
    import subprocess
    import sys

    from tiny import ROOT, write_tiny_params

    write_tiny_params(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text().replace("baseline_c: 10.0", "baseline_c: 0.0"))
    result = subprocess.run([sys.executable, "-m", "stages.news.evaluate"], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "news.evaluate.baseline_c" in lines[0]


def test_token_dropout_only_in_training_and_golden() -> None:
    m = ModelParams(d_model=8, nhead=2, d_hid=16, nlayers=1, dropout=0.0, max_len=12, token_dropout=0.5)
    torch.manual_seed(0)
    model = NewsClassifier(m, 20, 3)
    ids = torch.tensor([[CLS_ID, 5, 6, 7, 8, 9, 0, 0], [CLS_ID, 10, 11, 12, 13, 14, 15, 16]])
    plain = NewsClassifier(ModelParams(**{**m.__dict__, "token_dropout": 0.0}), 20, 3)
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    assert torch.equal(model(ids), plain(ids))  # no effect at inference
    model.train(), plain.train()
    torch.manual_seed(1)
    out = model(ids)
    torch.manual_seed(1)
    hit = torch.rand(ids.shape) < 0.5
    masked = ids.masked_fill(hit & (ids > CLS_ID), UNK_ID)
    assert (masked[:, 0] == CLS_ID).all() and (masked[0, 6:] == 0).all()  # [CLS] and padding untouched
    assert not torch.equal(masked, ids)
    assert torch.allclose(out, plain(masked))
    assert out.sum().item() == pytest.approx(2.017685, abs=1e-5)  # fixed-seed golden


def test_seed_ensemble_trains_saves_and_predicts_golden(common, paths) -> None:
    p = tiny_params()
    p.train.members, p.model.token_dropout = 2, 0.1
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    summary = train.run(p, common, paths)
    assert summary["members"] == 2
    assert summary["member_best_val_accuracy"] == pytest.approx([0.277778, 0.25], abs=1e-6)  # fixed-seed golden
    assert summary["ensemble_val_accuracy"] == pytest.approx(0.416667, abs=1e-6)
    model = load_model(paths.model)
    assert isinstance(model, Ensemble) and len(model.members) == 2
    splits, _ = load_prepared(paths.prepared)
    val = splits["val"]
    out = predict_logits(model, val["ids"], val["lengths"], torch.device("cpu"))
    each = [predict_logits(k, val["ids"], val["lengths"], torch.device("cpu")) for k in model.members]
    probs = np.mean([np.exp(e - e.max(1, keepdims=True)) / np.exp(e - e.max(1, keepdims=True)).sum(1, keepdims=True)
                     for e in each], axis=0)  # fmt: skip
    assert np.allclose(np.exp(out), probs, atol=1e-5)
    assert (out.argmax(1) == val["labels"]).mean() == pytest.approx(summary["ensemble_val_accuracy"], abs=1e-6)
    predict.run(p, common, paths)
    assert evaluate.run(p, common, paths)["val_accuracy"] == pytest.approx(summary["ensemble_val_accuracy"])
    package.run(p, COMMON, paths)
    assert "Seed ensemble of 2 models" in paths.report.read_text()
    assert not list(paths.checkpoints.rglob("*.pt"))  # every member's checkpoints cleared after success


def test_ema_weights_are_evaluated_and_kept_golden(common, paths) -> None:
    p = tiny_params()
    p.train.ema = 0.9
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    summary = train.run(p, common, paths)
    assert summary["best_val_accuracy"] == pytest.approx(0.305556, abs=1e-6)  # fixed-seed golden
    assert summary["best_val_loss"] == pytest.approx(1.384005, abs=1e-5)
    splits, _ = load_prepared(paths.prepared)
    val = splits["val"]
    kept = predict_logits(load_model(paths.model), val["ids"], val["lengths"], torch.device("cpu"))
    assert (kept.argmax(1) == val["labels"]).mean() == pytest.approx(summary["best_val_accuracy"], abs=1e-6)


@pytest.mark.parametrize("name", ["agsample", "agsample-single", "ag-full"])
def test_news_presets_are_valid_params(name) -> None:
    import yaml
    from tiny import ROOT

    from stages.common.params import CommonParams, from_dict
    from stages.news.config import NewsParams, validate

    preset = yaml.safe_load((ROOT / "presets" / "news.yaml").read_text())[name]
    from_dict(CommonParams, preset.pop("common", {}), "common")  # a preset may set common too (kernels)
    params = validate(from_dict(NewsParams, preset, "news"))
    assert params.data.source.startswith("dir:")
