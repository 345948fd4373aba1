"""Shared fixtures of the engine's tests: a tiny synthetic competition and a tiny CPU config.

Imported by the engine's test modules (not a conftest.py, so that other test suites merge
without conflicts).
"""

from __future__ import annotations

import pytest
import torch

from fathom import fileio
from fathom.config import TrainConfig
from fathom.data.coco import open_competition, read_split
from fathom.data.folds import assign_folds
from fathom.synth.fathomnet import SynthConfig, generate

TINY = SynthConfig(
    n_train=48, n_eval=16, width=48, height=32, n_categories=40, n_supercategories=8, seed=3
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tests share two cores with other work: one torch thread each."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_comp(tmp_path_factory):
    """A 48-image synthetic competition with a 2-fold split: (competition dir, folds csv)."""
    root = tmp_path_factory.mktemp("tiny")
    comp = generate(root / "comp", TINY, progress=False)
    folds = assign_folds(read_split(open_competition(comp), "train"), n_splits=2, seed=0)
    fileio.write_csv(root / "folds.csv", folds)
    return comp, root / "folds.csv"


def tiny_config(tiny_comp, tmp_path, **changes) -> TrainConfig:
    """fathom_cnn at 16 px for 2 epochs on the tiny competition, caches under tmp_path."""
    comp, folds = tiny_comp
    base = TrainConfig(
        name="tiny",
        competition=str(comp),
        folds=str(folds),
        n_folds=2,
        img_size=16,
        batch_size=8,
        epochs=2,
        lr=3e-3,
        cache_dir=str(tmp_path / "cache"),
        num_workers=0,
        device="cpu",
    )
    return base.replace(**changes)
