"""Loading the vision model with LoRA: unsloth's FastVisionModel on CUDA, transformers + peft elsewhere.

`load_for_training` is the one function the train stage calls; `choose_backend` decides the path before
anything imports transformers, because unsloth patches transformers/peft/trl and must be imported first.
"""

from __future__ import annotations

import importlib
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
    """An RGB PIL image of encoded bytes that vlm-caption-download already checked (common.images.open_rgb)."""
    from stages.common.images import open_rgb

    return open_rgb(image, "image")


class CaptionCollator:
    """Batches of (image, chat text) with the loss on the caption only: prompt and padding labels are -100.

    With `cache_images` every distinct image (by its bytes) is decoded and run through the image processor once,
    and its tensors reused whenever it comes back (600 steps of 16 revisit each of 1,500 images six times); the
    text is tokenised per batch as the processor does, and the batch is the processor's, tensor for tensor.
    """

    def __init__(self, processor: Any, cache_images: bool = False) -> None:
        self.processor = processor
        self.image_cache: dict[bytes, dict] | None = {} if cache_images else None
        self.prompt_lengths: dict[str, int] = {}  # the prompt is the same for every row: tokenised once

    def __call__(self, rows: list[dict]) -> dict:
        texts = [r["text"] for r in rows]
        if self.image_cache is None:
            batch = self.processor(
                images=[[pil(r["image"])] for r in rows],
                text=texts,
                padding=True,
                add_special_tokens=False,  # the chat template already starts with <|begin_of_text|>
                return_tensors="pt",
            )
        else:
            batch = self._from_cache(rows, texts)
        batch["labels"] = self.labels(batch, [r["prompt"] for r in rows])
        return batch

    def labels(self, batch: Any, prompts: list[str]) -> Any:
        """input_ids with -100 on padding and on the first len(prompt) attended tokens of every row."""
        import torch

        tok = self.processor.tokenizer
        for prompt in prompts:
            if prompt not in self.prompt_lengths:
                self.prompt_lengths[prompt] = len(tok(prompt, add_special_tokens=False)["input_ids"])
        n_prompt = torch.tensor([self.prompt_lengths[q] for q in prompts]).unsqueeze(1)
        mask = batch["attention_mask"]
        position = mask.cumsum(1) - 1  # index among the attended tokens, whichever side the padding is on
        labels = batch["input_ids"].clone()
        labels[(mask == 0) | (position < n_prompt)] = -100
        return labels

    def _from_cache(self, rows: list[dict], texts: list[str]) -> Any:
        import torch
        from transformers import BatchFeature
        from transformers.models.mllama.processing_mllama import (
            convert_sparse_cross_attention_mask_to_dense,
            get_cross_attention_token_mask,
        )

        assert self.image_cache is not None
        images = []
        for r in rows:
            if r["image"] not in self.image_cache:
                self.image_cache[r["image"]] = self.processor.image_processor([[pil(r["image"])]], return_tensors="pt")
            images.append(self.image_cache[r["image"]])
        text = self.processor.tokenizer(texts, padding=True, add_special_tokens=False)
        image_token = self.processor.tokenizer.convert_tokens_to_ids(self.processor.image_token)
        cross = convert_sparse_cross_attention_mask_to_dense(
            [get_cross_attention_token_mask(ids, image_token) for ids in text["input_ids"]],
            num_tiles=[im["num_tiles"][0] for im in images],
            max_num_tiles=self.processor.image_processor.max_image_tiles,
            length=max(len(ids) for ids in text["input_ids"]),
        )
        batch = BatchFeature({**text, "cross_attention_mask": cross}, tensor_type="pt")
        for key in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask"):
            batch[key] = torch.cat([im[key] for im in images])
        return batch
