"""Shared helpers of the news tests (a uniquely named module: every tests/ folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from tiny import tiny_task

from stages.news import config

AG_HF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ag_news" / "hf_sample_lst11111"
AG_ORIGINAL = AG_HF.parent / "original"


def tiny_params(source: str = "sample") -> config.NewsParams:
    p = tiny_task("news", config.NewsParams)
    p.data.source = source
    return p
