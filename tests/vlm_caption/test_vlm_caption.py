"""Every vlm-caption stage as a plain function on a tiny model and a tiny sample, on a temporary folder."""

from __future__ import annotations

import json

import pytest
from tiny import COMMON, tiny_task

from stages.common.params import CommonParams
from stages.vlm_caption import config, data, download, evaluate, package, predict, prepare, train


def tiny() -> config.VlmCaptionParams:
    return tiny_task("vlm-caption", config.VlmCaptionParams)


@pytest.fixture
def common() -> CommonParams:
    return CommonParams(device="cpu", threads=1, mlflow=False)


def test_sample_chain_end_to_end(tmp_path, common) -> None:
    paths, p = config.Paths(tmp_path), tiny()
    download.run(p, COMMON, paths)
    assert sorted(f.name for f in paths.raw.iterdir()) == sorted(
        ["train_data.parquet", "valid_data.parquet", "test_data.parquet", "sample_submission.json"]
    )
    prepare.run(p, COMMON, paths)
    rows = data.load_split(paths.prepared, "train")
    assert rows[0]["text"].startswith(rows[0]["prompt"]) and rows[0]["text"].endswith("<|eot_id|>")
    assert "<|image|>" in rows[0]["prompt"] and p.prepare.instruction in rows[0]["prompt"]

    summary = train.run(p, common, paths)
    assert summary["backend"] == "transformers" and summary["steps"] == 4
    assert 0 < summary["trainable_parameters"] < summary["parameters"]
    assert (paths.model / "adapter" / "adapter_config.json").is_file() and (paths.model / "base").is_dir()
    assert (paths.plots / "loss.png").is_file()

    submission = predict.run(p, common, paths)
    saved = json.loads(paths.submission.read_text())
    assert saved == submission and [e["idx"] for e in saved] == list(range(5))
    assert all(isinstance(e["output"], str) for e in saved)

    metrics = evaluate.run(p, COMMON, paths)
    assert 0 <= metrics["bleu"] <= 100 and 0 <= metrics["baseline_bleu"] <= 100
    assert metrics["valid_images"] == 6 and "tokenisation" in metrics

    text = package.run(p, COMMON, paths)
    assert "BLEU" in text and "baseline" in text and (paths.plots / "examples.png").is_file()


def test_bleu_is_a_percentage_and_perfect_for_a_reference() -> None:
    refs = [["a red circle on the left", "a red ball on the left"], ["a blue square on the right"]]
    assert evaluate.bleu(["a red circle on the left", "a blue square on the right"], refs)["bleu4"] == 100.0
    assert evaluate.bleu(["nothing alike", "at all"], refs)["bleu4"] < 5
    assert evaluate.tokenize("A dog, running.") == ["a", "dog", ",", "running", "."]


@pytest.mark.slow
def test_sample_scale_learns_beyond_the_baseline(tmp_path) -> None:
    """The default sample-scale params (about a minute of training on 2 cores): BLEU well above the baseline."""
    paths, p = config.Paths(tmp_path), config.load()[0]
    common = CommonParams(device="cpu", threads=1, mlflow=False)
    download.run(p, COMMON, paths)
    prepare.run(p, COMMON, paths)
    train.run(p, common, paths)
    predict.run(p, common, paths)
    metrics = evaluate.run(p, COMMON, paths)
    assert metrics["bleu"] > metrics["baseline_bleu"] + 20


def test_interrupted_training_resumes_to_the_same_adapter(tmp_path, common, monkeypatch) -> None:
    """A run killed after its step-4 checkpoint resumes from it and ends with the uninterrupted run's adapter."""
    import torch
    import transformers
    from safetensors.torch import load_file

    p = tiny()
    p.train.max_steps, p.train.checkpoint_every = 6, 2

    def trained(root, interrupt: bool) -> dict:
        paths = config.Paths(root)
        download.run(p, COMMON, paths)
        prepare.run(p, COMMON, paths)
        if interrupt:
            original = transformers.Trainer._save_checkpoint

            def save_then_die(self, *args, **kwargs):
                original(self, *args, **kwargs)
                if self.state.global_step == 4:
                    raise KeyboardInterrupt("killed after the step-4 checkpoint")

            with monkeypatch.context() as patch:
                patch.setattr(transformers.Trainer, "_save_checkpoint", save_then_die)
                with pytest.raises(KeyboardInterrupt):
                    train.run(p, common, paths)
            assert not paths.model.exists()  # no half-written output
            assert [c.name for c in paths.checkpoints.glob("*/checkpoint-*")] == ["checkpoint-4"]
        summary = train.run(p, common, paths)
        assert summary["steps"] == 6 and not any(paths.checkpoints.glob("*/checkpoint-*"))
        return load_file(paths.model / "adapter" / "adapter_model.safetensors")

    straight, resumed = trained(tmp_path / "straight", False), trained(tmp_path / "resumed", True)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
