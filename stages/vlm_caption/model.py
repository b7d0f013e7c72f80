"""Loading the vision model with LoRA: unsloth's FastVisionModel on CUDA, transformers + peft elsewhere.

`load_for_training` is the one function the train stage calls; `choose_backend` decides the path before
anything imports transformers, because unsloth patches transformers/peft/trl and must be imported first.
"""

from __future__ import annotations

import importlib
import io
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from stages.common.params import ParamsError
from stages.vlm_caption import config

log = logging.getLogger("vlm-caption")

# transformers' own Mllama vision layers call themselves with a deprecated keyword; nothing here to fix
warnings.filterwarnings("ignore", message="`hidden_state` is deprecated", category=FutureWarning)

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj", "fc1", "fc2")


def choose_backend(requested: str, cuda: bool) -> tuple[str, str]:
    """('unsloth' | 'transformers', why). unsloth only when CUDA is present and `import unsloth` succeeds."""
    if requested == "transformers":
        return "transformers", "vlm-caption.model.backend is 'transformers'"
    if not cuda:
        reason = "no CUDA device (unsloth cannot load a model without an NVIDIA GPU)"
    else:
        if "transformers" in sys.modules:
            log.warning("vlm-caption: transformers was imported before unsloth; unsloth's patches may be incomplete")
        try:
            # Without a GPU this raises NotImplementedError, not ImportError: catch everything.
            importlib.import_module("unsloth")
            return "unsloth", "CUDA is available and unsloth imports"
        except Exception as err:  # noqa: BLE001
            reason = f"unsloth does not import ({type(err).__name__}: {err})"
    if requested == "unsloth":
        raise ParamsError(f"vlm-caption.model.backend is 'unsloth' but {reason}")
    log.warning("vlm-caption: using transformers + peft instead of unsloth: %s", reason)
    return "transformers", reason


def target_modules(lora: config.LoraParams) -> str:
    """peft's regex for the LoRA targets, from unsloth's four switches (so both paths train the same layers)."""
    towers = (["language_model"] if lora.finetune_language_layers else []) + (
        ["vision_model"] if lora.finetune_vision_layers else []
    )
    kinds = (ATTENTION if lora.finetune_attention_modules else ()) + (MLP if lora.finetune_mlp_modules else ())
    if not towers or not kinds:
        raise ParamsError("vlm-caption.lora: the finetune_* switches select no module to train")
    return rf".*({'|'.join(towers)}).*\.({'|'.join(kinds)})"


def load_for_training(
    p: config.VlmCaptionParams, backend: str, base: str | Path, processor_dir: Path, device: Any
) -> tuple[Any, Any]:
    """(model with LoRA adapters ready to train, processor) for `base`: a Hub id or a local folder."""
    if backend == "unsloth":
        from unsloth import FastVisionModel

        model, processor = FastVisionModel.from_pretrained(
            str(base),
            load_in_4bit=p.model.load_in_4bit,
            use_gradient_checkpointing="unsloth" if p.model.gradient_checkpointing else False,
        )
        model = FastVisionModel.get_peft_model(
            model,
            finetune_vision_layers=p.lora.finetune_vision_layers,
            finetune_language_layers=p.lora.finetune_language_layers,
            finetune_attention_modules=p.lora.finetune_attention_modules,
            finetune_mlp_modules=p.lora.finetune_mlp_modules,
            r=p.lora.r,
            lora_alpha=p.lora.alpha,
            lora_dropout=p.lora.dropout,
            bias="none",
            random_state=p.seed,
            modules_to_save=p.lora.modules_to_save or None,
        )
        FastVisionModel.for_training(model)
        return model, processor
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(base)).to(device)
    processor = AutoProcessor.from_pretrained(processor_dir)
    if p.model.gradient_checkpointing and device.type == "cuda":
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=p.lora.r,
        lora_alpha=p.lora.alpha,
        lora_dropout=p.lora.dropout,
        target_modules=target_modules(p.lora),
        modules_to_save=p.lora.modules_to_save or None,
        bias="none",
    )
    return get_peft_model(model, lora), processor


def load_for_inference(
    model_dir: Path, base: str | Path, backend: str, device: Any, load_in_4bit: bool = True
) -> tuple[Any, Any]:
    """The base model with the trained adapter (models/vlm-caption/adapter), in eval mode, and the saved processor."""
    from stages.common.io import require_file

    require_file(model_dir / "adapter" / "adapter_config.json", "vlm-caption-train")
    if backend == "unsloth":
        # unsloth must be imported before peft (it patches it); importlib keeps the import sorter from moving it
        FastVisionModel = importlib.import_module("unsloth").FastVisionModel  # noqa: N806
        from peft import PeftModel

        net, _ = FastVisionModel.from_pretrained(str(base), load_in_4bit=load_in_4bit)
        net = PeftModel.from_pretrained(net, model_dir / "adapter")
        FastVisionModel.for_inference(net)
    else:
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText

        net = AutoModelForImageTextToText.from_pretrained(str(base))
        net = PeftModel.from_pretrained(net, model_dir / "adapter").to(device).eval()
    from transformers import AutoProcessor

    return net, AutoProcessor.from_pretrained(model_dir / "processor")


def pil(image: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(image)).convert("RGB")


class CaptionCollator:
    """Batches of (image, chat text) with the loss on the caption only: prompt and padding labels are -100."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict:
        batch = self.processor(
            images=[[pil(r["image"])] for r in rows],
            text=[r["text"] for r in rows],
            padding=True,
            add_special_tokens=False,  # the chat template already starts with <|begin_of_text|>
            return_tensors="pt",
        )
        labels = batch["input_ids"].clone()
        tok = self.processor.tokenizer
        for i, r in enumerate(rows):
            attended = batch["attention_mask"][i].nonzero().flatten()
            n_prompt = len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
            labels[i][batch["attention_mask"][i] == 0] = -100
            labels[i][attended[:n_prompt]] = -100
        batch["labels"] = labels
        return batch
