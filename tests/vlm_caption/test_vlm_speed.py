"""What makes the sample-scale training fast, guarded by mechanism (not by timing): the collator processes each
distinct image once and gives the processor's batch tensor for tensor; gradient checkpointing follows
`model.gradient_checkpointing` (trl turns it on by default); the per-step FLOP estimate counts parameters once."""

from __future__ import annotations

import pytest

from stages.vlm_caption import config, data, model, tiny_model, train

CAPTIONS = ["a red circle on the left", "a blue square on the right", "a green triangle on the left"]


@pytest.fixture(scope="module")
def processor():
    return tiny_model.build_processor(CAPTIONS * 3, tiny_model.TinyConfig(vocab_size=300))


def rows(processor, n: int) -> list[dict]:
    """n chat rows over 3 distinct images (and captions of different lengths, so some rows are padded)."""
    import numpy as np

    prompt = processor.apply_chat_template(data.messages("Describe."), add_generation_prompt=True)
    rng = np.random.default_rng(0)
    scenes = [("circle", "red"), ("square", "blue"), ("triangle", "green")]
    images = [data.png_bytes(data.draw_scene(shape, color, "left", rng, n=40)) for shape, color in scenes]
    return [
        {"image": images[i % 3], "prompt": prompt, "text": prompt + CAPTIONS[i % 3] + tiny_model.EOT} for i in range(n)
    ]


def reference_labels(processor, batch, batch_rows) -> list[list[int]]:
    """The loss mask spelled out row by row: -100 on padding and on the prompt's tokens."""
    out = []
    for i, r in enumerate(batch_rows):
        ids, mask = batch["input_ids"][i].tolist(), batch["attention_mask"][i].tolist()
        n_prompt = len(processor.tokenizer(r["prompt"], add_special_tokens=False)["input_ids"])
        attended = [j for j, m in enumerate(mask) if m]
        out.append([-100 if (not mask[j] or j in attended[:n_prompt]) else t for j, t in enumerate(ids)])
    return out


def test_cached_collator_processes_each_image_once_and_matches_the_processor(processor, monkeypatch) -> None:
    import torch

    data_rows = rows(processor, 8)
    plain, cached = model.CaptionCollator(processor), model.CaptionCollator(processor, cache_images=True)
    expected = [plain(data_rows[:5]), plain(data_rows[3:])]
    decoded = []
    real_pil = model.pil
    monkeypatch.setattr(model, "pil", lambda image: decoded.append(image) or real_pil(image))
    got = [cached(data_rows[:5]), cached(data_rows[3:])]
    assert len(decoded) == 3 and len(cached.image_cache) == 3  # 10 rows, 3 distinct images: 3 decodes, not 10
    for want, have, batch_rows in zip(expected, got, [data_rows[:5], data_rows[3:]], strict=True):
        assert want.keys() == have.keys()
        for key in want:
            assert want[key].dtype == have[key].dtype and torch.equal(want[key], have[key]), key
        assert have["labels"].tolist() == reference_labels(processor, have, batch_rows)
        assert (have["labels"] == -100).any(dim=1).all() and (have["labels"] != -100).any(dim=1).all()


def test_gradient_checkpointing_follows_the_params() -> None:
    import torch

    p = config.VlmCaptionParams()
    assert p.model.gradient_checkpointing is False  # sample scale: trl's default (True) recomputes every forward
    assert train.sft_config(p, "out", torch.device("cpu")).gradient_checkpointing is False
    p.model.gradient_checkpointing = True  # the full preset
    assert train.sft_config(p, "out", torch.device("cpu")).gradient_checkpointing is True


def test_flop_estimate_counts_the_parameters_once() -> None:
    import torch

    calls = []

    class Net:
        main_input_name = "input_ids"

        def num_parameters(self, exclude_embeddings: bool = False) -> int:
            calls.append(exclude_embeddings)
            return 7

    class Base:
        def floating_point_ops(self, inputs):  # what transformers' Trainer computes at every step
            return 6 * inputs["input_ids"].numel() * self.model.num_parameters(exclude_embeddings=True)

    trainer = train.counted_once(Base)()
    trainer.model = Net()
    batch = {"input_ids": torch.zeros(4, 9, dtype=torch.long)}
    assert [trainer.floating_point_ops(batch) for _ in range(3)] == [6 * 36 * 7] * 3
    assert calls == [True]
