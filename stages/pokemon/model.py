"""Decoder-only models from Hugging Face config classes, trained from scratch (no pretrained weights)."""

from __future__ import annotations

import math
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


def load_members(path: str | Path, device: torch.device | str = "cpu") -> list[torch.nn.Module]:
    """What pokemon-train saved at `path`: one model (its config.json at `path`), or an ensemble's members in
    `path`/member-0, member-1, ... (`train.members` > 1)."""
    from stages.common.io import DataError

    if (Path(path) / "config.json").is_file():
        return [load_model(path, device)]
    folders = {f.name for f in Path(path).glob("member-*")}
    names = [f"member-{m}" for m in range(len(folders))]
    if not folders or folders != set(names):
        raise DataError(f"{path}: neither one model (config.json) nor the members member-0 .. member-N")
    return [load_model(Path(path) / name, device) for name in names]


def next_log_probs(members: list[torch.nn.Module], tokens: torch.Tensor, caches: list) -> torch.Tensor:
    """log p(next token) under the ensemble, p = (1/M) Σ_m p_m, after the new `tokens` (n, t); each member's KV
    cache holds the tokens before them and is extended in place. One member: its own log-softmax, exactly."""
    per_member = [
        torch.log_softmax(m(input_ids=tokens, past_key_values=c, use_cache=True).logits[:, -1].float(), dim=-1)
        for m, c in zip(members, caches, strict=True)
    ]  # M × (n, V)
    return torch.logsumexp(torch.stack(per_member), dim=0) - math.log(len(members))  # (n, V)


def draw(members: list[torch.nn.Module], prefixes: torch.Tensor, p: PredictParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Extend each prefix (n, k) to SEQ_LEN tokens under the ensemble: greedy, or sampled from its distribution
    after temperature, top-k and nucleus (transformers' warpers, in the order `generate` applies them). Returns
    the sequences (n, SEQ_LEN) and each completion's log-likelihood Σ log p(token | before) under the ensemble's
    own, untempered and untruncated distribution, whatever drew the tokens (n,)."""
    from transformers import DynamicCache
    from transformers.generation import logits_process as lp

    warp = lp.LogitsProcessorList()
    if p.temperature != 1.0:
        warp.append(lp.TemperatureLogitsWarper(p.temperature))
    if p.top_k > 0:
        warp.append(lp.TopKLogitsWarper(p.top_k))
    if p.top_p < 1.0:
        warp.append(lp.TopPLogitsWarper(p.top_p))
    caches = [DynamicCache() for _ in members]
    sequences, new = prefixes, prefixes
    log_likelihood = torch.zeros(len(prefixes), device=prefixes.device)
    for _ in range(SEQ_LEN - prefixes.shape[1]):
        log_p = next_log_probs(members, new, caches)  # (n, V)
        if p.strategy == "greedy":
            new = log_p.argmax(dim=-1, keepdim=True)  # (n, 1)
        else:
            new = torch.multinomial(torch.softmax(warp(sequences, log_p.clone()), dim=-1), num_samples=1)  # (n, 1)
        log_likelihood += log_p.gather(1, new).squeeze(1)
        sequences = torch.cat([sequences, new], dim=1)  # (n, t + 1)
    return sequences, log_likelihood


@torch.inference_mode()
def complete(
    members: list[torch.nn.Module], prefixes: np.ndarray, p: PredictParams, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Complete each prefix (n, k) to SEQ_LEN tokens under the members' mean distribution (`draw`); seeded, so the
    same inputs give the same output.

    With `p.candidates` K > 1 (sampling only), K completions are drawn per prefix and the one with the highest
    log-likelihood under the ensemble is kept: sample-and-rank, which keeps sampling's variety across prefixes
    while dropping the draws the model itself finds unlikely. Rows (prefix × draw) go `p.batch_size` at a time,
    each batch seeded by `p.seed` + its first row."""
    from tqdm import tqdm

    k = p.candidates
    rows = torch.as_tensor(prefixes, dtype=torch.long).repeat_interleave(k, dim=0)  # (n K, prefix): draws together
    sequences, scores = [], []
    for start in tqdm(range(0, len(rows), p.batch_size), desc="generate", leave=False):
        torch.manual_seed(p.seed + start)
        seq, score = draw(members, rows[start : start + p.batch_size].to(device), p)
        sequences.append(seq.cpu())
        scores.append(score.cpu())
    sequences = torch.cat(sequences).reshape(len(prefixes), k, SEQ_LEN)
    best = torch.cat(scores).reshape(len(prefixes), k).argmax(dim=1)  # (n,)
    return sequences[torch.arange(len(prefixes)), best].numpy().astype(np.int64)
