import dataclasses
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
def tiny_pokemon(tmp_path):
    """Tiny pokemon params (seconds per stage), the common params without MLflow, and paths under tmp_path."""
    from stages.pokemon import config

    p = config.PokemonParams()
    p.model = config.ModelParams(d_model=16, n_layer=1, n_head=2)
    p.train = dataclasses.replace(p.train, epochs=2, batch_size=64, lr=3e-3, warmup_steps=2)
    p.classifier = dataclasses.replace(p.classifier, epochs=1, width=8, members=2)
    p.evaluate = dataclasses.replace(p.evaluate, fid_reference_images=4, fid_extractor="fid-helper")
    common = config.CommonParams(device="cpu", mlflow=False)
    return p, common, config.Paths(tmp_path)


def shrink_prepared(paths, n_train: int = 64, n_dev: int = 16) -> None:
    """Cut the prepared train/dev splits so tiny training runs take a second, not a minute."""
    for name, n in (("train.txt", n_train), ("dev.txt", n_dev)):
        path = paths.prepared / name
        path.write_text("\n".join(path.read_text().splitlines()[:n]) + "\n")
