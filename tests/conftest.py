import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
# Light stages log to MLflow from a detached process after they exit (stages/common/tracking.py); tests
# read MLflow right after a stage returns, so they log synchronously (test_tracking tests the spool).
os.environ["STAGES_MLFLOW_SYNC"] = "1"


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
def tiny_pokemon(tmp_path):
    """Tiny pokemon params (seconds per stage), the common params without MLflow, and paths under tmp_path."""
    from tiny import COMMON, tiny_task

    from stages.pokemon import config

    return tiny_task("pokemon", config.PokemonParams), COMMON, config.Paths(tmp_path)


def shrink_prepared(paths, n_train: int = 64, n_dev: int = 16) -> None:
    """Cut the prepared train/dev splits so tiny training runs take a second, not a minute."""
    for name, n in (("train.txt", n_train), ("dev.txt", n_dev)):
        path = paths.prepared / name
        path.write_text("\n".join(path.read_text().splitlines()[:n]) + "\n")
