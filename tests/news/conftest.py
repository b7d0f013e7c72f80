from __future__ import annotations

from pathlib import Path

import pytest

from stages.common.params import CommonParams
from stages.news import config


@pytest.fixture
def common() -> CommonParams:
    return CommonParams(device="cpu", threads=1, mlflow=False)


@pytest.fixture
def paths(tmp_path: Path) -> config.Paths:
    return config.Paths(tmp_path)
