# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""fathom/data/fold_data.py: one fold's data built on the data side, without the engine."""

import numpy as np
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom.data import read_data
from fathom.data.fold_data import fold_images, fold_labels
from fathom.errors import FathomError

CPU = torch.device("cpu")


def test_labels_split_the_training_table_by_fold(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path, supercat_weight=1.0)
    data = read_data(cfg)
    labels = fold_labels(data, cfg, 1)
    folds = data.train["fold"].to_numpy()
    assert labels.name == "fold1" and set(folds[labels.val_rows]) == {1}
    assert sorted(np.concatenate([labels.train_rows, labels.val_rows])) == list(range(len(folds)))
    assert labels.y_all.shape == (len(folds), len(data.class_ids))
    assert labels.n_super == labels.y_super.shape[1] > 0
    full = fold_labels(data, cfg, None)
    assert full.name == "full" and len(full.val_rows) == 0


def test_too_few_training_rows_is_one_line(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path)
    data = read_data(cfg)
    one = data.train.assign(fold=[0] * (len(data.train) - 1) + [1])
    with pytest.raises(FathomError, match=r"fold0: 1 training image\(s\); need at least 2"):
        fold_labels(type(data)(one, data.eval, data.class_ids, data.name), cfg, 0)


@pytest.mark.parametrize("on_device", ["yes", "no"])
def test_images_give_every_sample_its_targets_crops_after_the_table(tiny_comp, tmp_path, on_device):
    cfg = tiny_config(
        tiny_comp, tmp_path, crop_rate=0.5, supercat_weight=1.0, data_on_device=on_device
    )
    data = read_data(cfg)
    labels = fold_labels(data, cfg, 0)
    said = []
    images = fold_images(data, cfg, labels, 16, CPU, True, said.append)
    n, crops = len(data.train), images.crops
    assert images.n_labelled == n and images.n_pseudo == 0 and said == []
    np.testing.assert_array_equal(images.train_rows, labels.train_rows)
    assert len(images.targets) == n + len(crops.table) == len(images.super_targets)
    np.testing.assert_array_equal(images.targets[:n], labels.y_all)
    np.testing.assert_array_equal(images.targets[crops.offset :], crops.targets)
    # a crop's supercategories are among those of its image
    for j in range(len(crops.table)):
        row = np.flatnonzero(data.train["id"] == crops.table["source"].iloc[j])[0]
        assert (images.super_targets[n + j] <= labels.y_super[row]).all()
    held = on_device == "yes"
    assert (images.train_src.tensor is not None) == held
    assert (crops.source.tensor is not None) == held
    assert images.eval_src.tensor is None  # the eval images are held only while predicted
    rows, batch = next(images.train_src.batches([labels.train_rows[:4]]))
    assert batch.shape == (4, 16, 16, 3) and batch.dtype == torch.uint8
