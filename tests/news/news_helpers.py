"""Shared helpers of the news tests (a uniquely named module: every tests/ folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from stages.news import config

AG_HF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ag_news" / "hf_sample_lst11111"
AG_ORIGINAL = AG_HF.parent / "original"


def tiny_params(source: str = "sample") -> config.NewsParams:
    p = config.NewsParams()
    p.data.source = source
    p.data.sample_train, p.data.sample_test = 240, 40
    p.prepare.max_len = p.model.max_len = 32
    p.model.d_model, p.model.nhead, p.model.d_hid, p.model.nlayers = 16, 2, 32, 1
    p.train.epochs, p.train.batch_size = 2, 32
    return p
