# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""The step that does not wait on the host: an epoch's augmentation drawn at once equals
drawing it batch by batch; the loader's workers persist across passes; the eval images take
device memory only while they are predicted."""

import numpy as np
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom.config import TrainConfig
from fathom.data import read_data
from fathom.data.augment import Preprocess
from fathom.data.loader import ImageSource
from fathom.engine import distributed
from fathom.engine.train import set_up_fold

CPU = torch.device("cpu")


def test_an_epochs_augmentation_drawn_at_once_is_the_one_drawn_batch_by_batch():
    prep = Preprocess(TrainConfig(), 16, (0.5,) * 3, (0.25,) * 3, CPU)
    images = torch.randint(0, 256, (13, 20, 20, 3), dtype=torch.uint8)
    sizes = [5, 5, 3]
    per_batch, gen = [], torch.Generator().manual_seed(7)
    for a, b in ((0, 5), (5, 10), (10, 13)):
        per_batch.append(prep.train(images[a:b], gen))
    params = prep.draw(sizes, torch.Generator().manual_seed(7))
    assert params.theta.shape == (13, 2, 3) and params.gain.shape == (13,)
    at_once = [prep.train(images[a:b], params[a:b]) for a, b in ((0, 5), (5, 10), (10, 13))]
    for x, y in zip(per_batch, at_once, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_the_loader_keeps_its_workers_across_passes(tmp_path):
    cache = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    np.save(tmp_path / "c.npy", cache)
    source = ImageSource(tmp_path / "c.npy", CPU, on_device=False, num_workers=1)
    first = [(r, x.clone()) for r, x in source.batches([np.array([3, 1]), np.array([7])])]
    workers = source._loader._iterator
    second = list(source.batches([np.array([9, 0, 2])]))
    assert source._loader._iterator is workers  # the same worker processes, not new ones
    for rows, x in first + second:
        np.testing.assert_array_equal(x.numpy(), cache[rows])


def test_held_puts_the_cache_on_the_device_for_the_block_only(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 2, 2, 3), np.uint8))
    source = ImageSource(tmp_path / "c.npy", CPU, on_device=False)
    with source.held("yes"):
        assert source.tensor is not None
    assert source.tensor is None
    with source.held("no"):
        assert source.tensor is None


def test_during_training_only_the_training_images_sit_on_the_device(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path, data_on_device="yes")
    ctx = distributed.Dist()
    f = set_up_fold(cfg, read_data(cfg), 0, tmp_path / "f", ctx, CPU, print)
    assert f.train_src.tensor is not None and f.eval_src.tensor is None
