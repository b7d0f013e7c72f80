"""A tiny randomly initialised Llama-3.2-Vision (`MllamaForConditionalGeneration`) built from code, no download.

The sample preset trains this stand-in so the whole chain runs on a CPU in minutes: the same architecture
(vision encoder with tiles and gated cross-attention into a Llama text decoder), the same processor classes
and a Llama-3.2-style chat template, only thousands of times smaller. The tokenizer is a byte-level BPE
trained on the training captions (deterministic), with Llama 3's special tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import MllamaForConditionalGeneration, MllamaProcessor

    from stages.vlm_caption.config import ModelParams

BOS, EOT, PAD, IMAGE = "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>", "<|image|>"
SPECIAL_TOKENS = [BOS, "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", EOT, PAD, IMAGE, "<|python_tag|>"]

# Llama 3.2 Vision's template reduced to what captioning uses: one user turn (image + text), one assistant turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|image|>' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@dataclasses.dataclass
class TinyConfig:
    """Sizes of the stand-in; the defaults give about 0.2M parameters."""

    vocab_size: int = 384  # BPE target (byte alphabet 256 + merges + special tokens)
    image_size: int = 32  # one tile of image_size × image_size
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 2
    text_hidden: int = 64
    text_layers: int = 4
    cross_attention_layers: tuple[int, ...] = (1, 3)
    heads: int = 4
    gate_init: float = 1.0  # the real model's cross-attention gates are trained; a random model's must be open


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """Byte-level BPE on `texts` (order fixed by the caller), wrapped as a fast tokenizer with Llama 3's specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        padding_side="left",  # generation continues from the right end of every prompt
        chat_template=CHAT_TEMPLATE,
        extra_special_tokens={"image_token": IMAGE},
    )


def build_processor(texts: Iterable[str], cfg: TinyConfig) -> MllamaProcessor:
    from transformers import MllamaImageProcessor, MllamaProcessor

    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    image_processor = MllamaImageProcessor(
        size={"height": cfg.image_size, "width": cfg.image_size}, max_image_tiles=1, do_pad=True
    )
    return MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_model(processor: MllamaProcessor, cfg: TinyConfig, seed: int) -> MllamaForConditionalGeneration:
    """A randomly initialised MllamaForConditionalGeneration sized by `cfg`, its vocabulary the processor's."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    tok = processor.tokenizer
    ids = {name: tok.convert_tokens_to_ids(name) for name in (BOS, EOT, PAD, IMAGE)}
    vision = {
        "hidden_size": cfg.vision_hidden,
        "num_hidden_layers": cfg.vision_layers,
        "num_global_layers": 1,
        "attention_heads": cfg.heads,
        "intermediate_size": 2 * cfg.vision_hidden,
        "image_size": cfg.image_size,
        "patch_size": cfg.patch_size,
        "max_num_tiles": 1,
        "supported_aspect_ratios": [[1, 1]],
        "intermediate_layers_indices": [0],
        "vision_output_dim": 2 * cfg.vision_hidden,  # hidden × (len(intermediate_layers_indices) + 1)
    }
    text = {
        "vocab_size": len(tok),
        "hidden_size": cfg.text_hidden,
        "num_hidden_layers": cfg.text_layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": max(1, cfg.heads // 2),
        "intermediate_size": 2 * cfg.text_hidden,
        "cross_attention_layers": list(cfg.cross_attention_layers),
        "max_position_embeddings": 256,
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOT],
        "pad_token_id": ids[PAD],
    }
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=ids[IMAGE])
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                param.fill_(cfg.gate_init)
    model.generation_config.bos_token_id = ids[BOS]
    model.generation_config.eos_token_id = ids[EOT]
    model.generation_config.pad_token_id = ids[PAD]
    return model


def tiny_config(m: ModelParams) -> TinyConfig:
    """The tiny model's config from the `model:` params."""
    return TinyConfig(
        vocab_size=m.tiny_vocab,
        image_size=m.tiny_image_size,
        text_hidden=m.tiny_text_hidden,
        text_layers=m.tiny_text_layers,
        vision_hidden=m.tiny_vision_hidden,
        vision_layers=m.tiny_vision_layers,
    )
