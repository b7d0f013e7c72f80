"""The backend choice (unsloth only with CUDA and an importable unsloth, else transformers + peft with a logged
reason), the LoRA targets both paths share, and the unsloth call itself (with a stand-in module: no GPU here)."""

from __future__ import annotations

import logging
import re
import sys
import types

import pytest

from stages.common.params import ParamsError
from stages.vlm_caption import config, data, model, tiny_model


@pytest.fixture
def no_unsloth(monkeypatch):
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)


def test_without_cuda_falls_back_with_a_logged_reason(caplog, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "unsloth", types.ModuleType("unsloth"))  # importable, but no GPU
    with caplog.at_level(logging.WARNING, logger="vlm-caption"):
        backend, reason = model.choose_backend("auto", cuda=False)
    assert backend == "transformers" and "no CUDA" in reason
    assert "instead of unsloth" in caplog.text and "no CUDA" in caplog.text


def test_with_cuda_and_unsloth_chooses_unsloth(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "unsloth", types.ModuleType("unsloth"))
    assert model.choose_backend("auto", cuda=True)[0] == "unsloth"
    assert model.choose_backend("unsloth", cuda=True)[0] == "unsloth"


def test_unsloth_raising_not_implemented_falls_back(tmp_path, monkeypatch, caplog, no_unsloth) -> None:
    # what `import unsloth` does on a machine without an accelerator: NotImplementedError, not ImportError
    (tmp_path / "unsloth.py").write_text("raise NotImplementedError('Unsloth cannot find any torch accelerator')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="vlm-caption"):
        backend, reason = model.choose_backend("auto", cuda=True)
    assert backend == "transformers" and "NotImplementedError" in reason and "accelerator" in caplog.text
    with pytest.raises(ParamsError, match="backend is 'unsloth' but unsloth does not import"):
        model.choose_backend("unsloth", cuda=True)


def test_missing_unsloth_and_explicit_choices(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "unsloth", None)  # import raises ImportError
    backend, reason = model.choose_backend("auto", cuda=True)
    assert backend == "transformers" and "ModuleNotFoundError" in reason
    assert model.choose_backend("transformers", cuda=True) == (
        "transformers",
        "vlm-caption.model.backend is 'transformers'",
    )
    with pytest.raises(ParamsError, match="no CUDA"):
        model.choose_backend("unsloth", cuda=False)


def test_lora_targets_follow_unsloths_switches() -> None:
    names = [
        "model.language_model.layers.0.self_attn.q_proj",
        "model.language_model.layers.1.cross_attn.o_proj",
        "model.language_model.layers.0.mlp.down_proj",
        "model.vision_model.transformer.layers.0.self_attn.k_proj",
        "model.vision_model.transformer.layers.0.mlp.fc1",
        "lm_head",
    ]
    lora = config.LoraParams()
    hit = [n for n in names if re.fullmatch(model.target_modules(lora), n)]
    assert hit == names[:3]  # language layers only by default
    lora.finetune_vision_layers, lora.finetune_mlp_modules = True, False
    hit = [n for n in names if re.fullmatch(model.target_modules(lora), n)]
    assert hit == [names[0], names[1], names[3]]
    lora.finetune_language_layers = lora.finetune_vision_layers = False
    with pytest.raises(ParamsError, match="select no module"):
        model.target_modules(lora)


def test_unsloth_path_passes_the_params(monkeypatch, tmp_path) -> None:
    calls = {}

    class FastVisionModel:
        @staticmethod
        def from_pretrained(name, **kwargs):
            calls["from_pretrained"] = (name, kwargs)
            return "model", "processor"

        @staticmethod
        def get_peft_model(m, **kwargs):
            calls["get_peft_model"] = kwargs
            return "peft-model"

        @staticmethod
        def for_training(m):
            calls["for_training"] = m

    fake = types.ModuleType("unsloth")
    fake.FastVisionModel = FastVisionModel
    monkeypatch.setitem(sys.modules, "unsloth", fake)
    p = config.VlmCaptionParams()
    p.lora.r, p.lora.alpha = 8, 32
    p.model.gradient_checkpointing = True  # the full preset's (the sample scale turns it off)
    out = model.load_for_training(p, "unsloth", "unsloth/Llama-3.2-11B-Vision-Instruct", tmp_path, device=None)
    assert out == ("peft-model", "processor")
    name, kwargs = calls["from_pretrained"]
    assert name == "unsloth/Llama-3.2-11B-Vision-Instruct"
    assert kwargs == {"load_in_4bit": True, "use_gradient_checkpointing": "unsloth"}
    peft = calls["get_peft_model"]
    assert peft["r"] == 8 and peft["lora_alpha"] == 32 and peft["finetune_vision_layers"] is False
    assert peft["finetune_language_layers"] is True and calls["for_training"] == "peft-model"


def test_tiny_model_is_an_mllama_that_saves_reloads_and_generates(tmp_path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, MllamaForConditionalGeneration

    captions = ["a red circle on the left", "a blue square on the right"] * 5
    cfg = tiny_model.TinyConfig(vocab_size=300, text_hidden=32, vision_hidden=16)
    proc = tiny_model.build_processor(captions, cfg)
    again = tiny_model.build_processor(captions, cfg)
    assert proc.tokenizer.get_vocab() == again.tokenizer.get_vocab()  # deterministic tokenizer
    net = tiny_model.build_model(proc, cfg, seed=0)
    assert isinstance(net, MllamaForConditionalGeneration)
    assert net.config.text_config.cross_attention_layers == [1, 3]
    net.save_pretrained(tmp_path / "m")
    proc.save_pretrained(tmp_path / "m")
    net2 = AutoModelForImageTextToText.from_pretrained(tmp_path / "m").eval()
    proc2 = AutoProcessor.from_pretrained(tmp_path / "m")
    from PIL import Image

    prompt = proc2.apply_chat_template(data.messages("Describe."), add_generation_prompt=True)
    batch = proc2(
        images=[[Image.new("RGB", (40, 20), "red")]], text=[prompt], add_special_tokens=False, return_tensors="pt"
    )
    assert batch["pixel_values"].shape[-2:] == (32, 32)
    with torch.inference_mode():
        ids = net2.generate(**batch, max_new_tokens=3, do_sample=False)
    assert ids.shape[1] <= batch["input_ids"].shape[1] + 3
