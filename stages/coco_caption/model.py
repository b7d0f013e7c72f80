"""The assignment's CaptioningTransformer, on the shared from-scratch blocks (stages/common/transformer.py).

Caption embedding + learned positions (+ dropout); the image feature projected Linear(D_in→D) as a
length-1 memory; N post-LN DecoderBlocks (self → cross → ff, each dropout → residual → LayerNorm, the
causal lower-triangular mask as an additive −inf mask, 1/√d scaling); output Linear(D→V). Init normal(0, 0.02).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stages.coco_caption.data import END, NULL, START
from stages.common import checkpoint
from stages.common.io import DataError, atomic_path
from stages.common.transformer import DecoderBlock, LearnedPositionalEncoding


class CaptioningTransformer(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        input_dim: int,
        embed_dim: int,
        num_heads: int,
        num_layers: int,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        max_length: int = 30,
        activation: str = "gelu",
    ):
        super().__init__()
        self.hparams = dict(locals())
        for k in ("self", "__class__"):
            self.hparams.pop(k, None)
        self.visual_projection = nn.Linear(input_dim, embed_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=NULL)
        self.positional_encoding = LearnedPositionalEncoding(embed_dim, max_length)
        self.pos_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            DecoderBlock(embed_dim, num_heads, ff_dim, dropout, norm_first=False, activation=activation)
            for _ in range(num_layers)
        )
        self.output = nn.Linear(embed_dim, vocab_size)
        self.max_length = max_length
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """features (N, D_in), captions (N, T) -> scores (N, T, V)."""
        x = self.pos_dropout(self.positional_encoding(self.embedding(captions)))  # (N, T, D)
        memory = self.visual_projection(features).unsqueeze(1)  # (N, 1, D)
        for layer in self.layers:
            x = layer(x, memory)  # causal self-attention is always applied by DecoderBlock
        return self.output(x)

    @torch.no_grad()
    def sample(self, features: torch.Tensor, max_length: int = 30) -> torch.Tensor:
        """Greedy decoding from <START>: (N, D_in) -> (N, max_length) word ids (the course's sample)."""
        self.eval()
        n = features.shape[0]
        partial = torch.full((n, 1), START, dtype=torch.long, device=features.device)
        out = torch.full((n, max_length), NULL, dtype=torch.long, device=features.device)
        done = torch.zeros(n, dtype=torch.bool, device=features.device)
        for t in range(min(max_length, self.max_length)):
            word = self(features, partial)[:, -1].argmax(-1)
            word = torch.where(done, torch.full_like(word, NULL), word)
            out[:, t] = word
            done |= word == END
            if done.all():
                break
            partial = torch.cat([partial, word[:, None]], dim=1)
        return out

    @torch.no_grad()
    def beam_search(self, feature: torch.Tensor, beam_size: int = 3, max_length: int = 30) -> list[int]:
        """Beam search for one image (D_in,) by summed log-probability; returns word ids up to <END>."""
        self.eval()
        beams = [([START], 0.0)]
        finished: list[tuple[list[int], float]] = []
        for _ in range(min(max_length, self.max_length)):
            seqs = torch.tensor([b[0] for b in beams], device=feature.device)
            logp = self(feature.expand(len(beams), -1), seqs)[:, -1].log_softmax(-1)
            cand = []
            for (seq, score), row in zip(beams, logp, strict=True):
                top = row.topk(min(beam_size, row.numel()))  # a beam wider than the vocabulary: all of it
                cand += [(seq + [int(i)], score + float(v)) for v, i in zip(top.values, top.indices, strict=True)]
            cand.sort(key=lambda c: -c[1])
            beams = []
            for seq, score in cand[:beam_size]:
                (finished if seq[-1] == END else beams).append((seq, score))
            if not beams:
                break
        best = max(finished + beams, key=lambda c: c[1])[0]
        return best[1:]


def temporal_softmax_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The course's loss: token cross-entropy with <NULL> targets zeroed, averaged over all N×T positions."""
    loss = nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1), reduction="none")
    return (loss * (targets.reshape(-1) != NULL)).mean()


def save_model(model: CaptioningTransformer, path: str | Path) -> None:
    """Tensors and plain values only: the file is read back with weights_only=True."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint.plain({"hparams": dict(model.hparams), "state": model.state_dict()}, str(path)), tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> CaptioningTransformer:
    """The saved model in eval mode on `device`; a file that is not a coco-caption-train model (missing, empty,
    cut short, another file) is a DataError naming it."""
    saved = checkpoint.load(path, made_by="coco-caption-train")
    try:
        model = CaptioningTransformer(**saved["hparams"])
        model.load_state_dict(saved["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{path}: not a model written by coco-caption-train ({type(err).__name__}); run it again"
        ) from None
    return model.to(device).eval()
