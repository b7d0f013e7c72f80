"""Decoder-only models from Hugging Face config classes, trained from scratch (no pretrained weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stages.pokemon.config import ModelParams, PredictParams
from stages.pokemon.data import SEQ_LEN


def build_config(m: ModelParams, vocab_size: int):
    """The transformers config for `m.arch`; the same sizes mean the same thing for every arch."""
    import transformers

    d_ff = m.d_ff or 4 * m.d_model
    if m.arch == "gpt2":
        return transformers.GPT2Config(
            vocab_size=vocab_size,
            n_positions=SEQ_LEN,
            n_embd=m.d_model,
            n_layer=m.n_layer,
            n_head=m.n_head,
            n_inner=d_ff,
            resid_pdrop=m.dropout,
            embd_pdrop=m.dropout,
            attn_pdrop=m.dropout,
            bos_token_id=None,
            eos_token_id=None,
        )
    config_class = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
    }[m.arch]
    return config_class(
        vocab_size=vocab_size,
        hidden_size=m.d_model,
        intermediate_size=d_ff,
        num_hidden_layers=m.n_layer,
        num_attention_heads=m.n_head,
        num_key_value_heads=m.n_head,
        max_position_embeddings=SEQ_LEN,
        attention_dropout=m.dropout,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=True,
    )


def build_model(m: ModelParams, vocab_size: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(build_config(m, vocab_size), attn_implementation="sdpa")


def load_model(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from stages.common.io import require_file

    require_file(Path(path) / "config.json", "pokemon-train")  # else transformers takes the path for a Hub id
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").to(device).eval()


def next_token_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting seq[1:] from seq[:-1], the course's pairing."""
    logits = model(input_ids=batch[:, :-1]).logits  # (B, T-1, V)
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:])


def completion_log_likelihood(model: torch.nn.Module, sequences: torch.Tensor, start: int) -> torch.Tensor:
    """Sum of log p(token | tokens before it) over positions start..end of each sequence (n, T): the model's own,
    untempered and untruncated distribution, whatever sampler drew the tokens."""
    logits = model(input_ids=sequences[:, :-1]).logits[:, start - 1 :]  # (n, T-start, V): predicts tokens start..T-1
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return log_p.gather(-1, sequences[:, start:, None]).squeeze(-1).sum(dim=1)  # (n,)


@torch.inference_mode()
def complete(
    model: torch.nn.Module, prefixes: np.ndarray, p: PredictParams, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Complete each prefix (n, k) to SEQ_LEN tokens; seeded, so the same inputs give the same output.

    With `p.candidates` K > 1 (sampling only), K completions are drawn per prefix, one batch after another, and the
    one with the highest log-likelihood under the model (`completion_log_likelihood`) is kept: sample-and-rank,
    which keeps sampling's variety across prefixes while dropping the draws the model itself finds unlikely."""
    from tqdm import tqdm

    sample = p.strategy == "sample"
    out = []
    for start in tqdm(range(0, len(prefixes), p.batch_size), desc="generate", leave=False):
        torch.manual_seed(p.seed + start)
        batch = torch.as_tensor(prefixes[start : start + p.batch_size], dtype=torch.long, device=device)
        drawn = [
            model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                max_length=SEQ_LEN,
                min_length=SEQ_LEN,
                do_sample=sample,
                temperature=p.temperature if sample else None,
                top_k=p.top_k if sample and p.top_k > 0 else None,
                top_p=p.top_p if sample else None,
                pad_token_id=0,
                eos_token_id=None,
            )
            for _ in range(p.candidates)
        ]  # K × (b, SEQ_LEN)
        if p.candidates == 1:
            out.append(drawn[0].cpu().numpy())
            continue
        candidates = torch.stack(drawn, dim=1)  # (b, K, SEQ_LEN)
        b, k, t = candidates.shape
        scores = completion_log_likelihood(model, candidates.reshape(b * k, t), batch.shape[1]).reshape(b, k)
        best = scores.argmax(dim=1)  # (b,)
        out.append(candidates[torch.arange(b), best].cpu().numpy())
    return np.concatenate(out).astype(np.int64)
