"""Issue 18.12: a training step makes no host-to-device copy of its own (each one makes the
host wait on a GPU): augmentation with every op on, Mixup/CutMix, and a pseudo-label batch
joined from two caches. On a CPU a copy cannot be seen, so calls are counted instead: every
`Tensor.to` given a device, and every `torch.tensor` built with one."""

import numpy as np
import torch

from fathom.config import TrainConfig
from fathom.data.augment import Preprocess
from fathom.data.loader import ImageSource, JoinedSource

CPU = torch.device("cpu")


class CopyCounter:
    """Counts, while installed, the calls that would copy host numbers to a device."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real_to, real_tensor = REAL_TO, REAL_TENSOR

        def to(t, *args, **kwargs):
            if "device" in kwargs or any(isinstance(a, (torch.device, str)) for a in args):
                self.calls += 1
            return real_to(t, *args, **kwargs)

        def tensor(*args, **kwargs):
            self.calls += "device" in kwargs
            return real_tensor(*args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", to)
        monkeypatch.setattr(torch, "tensor", tensor)


REAL_TO, REAL_TENSOR = torch.Tensor.to, torch.tensor


def test_an_augmented_mixed_step_makes_no_device_copy(monkeypatch):
    cfg = TrainConfig(
        auto_augment="trivial", hue=0.1, saturation=0.3, contrast=0.3, brightness=(0.8, 1.2),
        mixup=0.4, cutmix=1.0, mix_prob=1.0,
    )  # fmt: skip
    prep = Preprocess(cfg, 32, (0.5,) * 3, (0.25,) * 3, CPU)
    aug = prep.draw([8, 8, 8], torch.Generator().manual_seed(0))  # the epoch's, uploaded once
    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    y = torch.zeros(8, 5)
    counter = CopyCounter(monkeypatch)
    for b in range(3):
        part = aug[slice(8 * b, 8 * (b + 1))]
        x = prep.train(images, part)
        x, y_mixed = prep.mix(x, y, part, 5)
    assert counter.calls == 0
    assert torch.isfinite(x).all() and y_mixed.shape == (8, 5)


def _source(tmp_path, name, n, value_of_row):
    path = tmp_path / f"{name}.npy"
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 4, 4, 3))
    for i in range(n):
        images[i] = value_of_row(i)
    images.flush()
    return ImageSource(path, CPU, on_device=True)


def test_a_joined_pass_copies_once_whatever_its_number_of_steps(tmp_path, monkeypatch):
    first = _source(tmp_path, "train", 10, lambda i: i)
    second = _source(tmp_path, "eval", 6, lambda i: 100 + i)
    joined = JoinedSource(first, second)
    rng = np.random.default_rng(0)
    counts = []
    for steps in (2, 8):
        batches = [rng.permutation(16)[:5] for _ in range(steps)]
        counter = CopyCounter(monkeypatch)
        out = list(joined.batches(batches))
        counts.append(counter.calls)
        for rows, images in out:  # each batch still in its own row order
            expected = np.where(rows < 10, rows, 100 + rows - 10)
            np.testing.assert_array_equal(images[:, 0, 0, 0].numpy(), expected)
    assert counts[0] == counts[1]  # per pass, not per step


def test_a_training_epoch_copies_per_epoch_not_per_step(tmp_path, monkeypatch):
    """The whole step as train_fold runs it (augmentation, Mixup, the loss with the
    supercategory head, the divergence count): as many device copies for 2 steps as for 5."""
    from engine_fixtures import TINY

    import fathom.engine.train as train_module
    from fathom import fileio
    from fathom.data import read_data
    from fathom.data.coco import open_competition, read_split
    from fathom.data.folds import assign_folds
    from fathom.synth.fathomnet import generate

    comp = generate(tmp_path / "comp", TINY, progress=False)
    folds = assign_folds(read_split(open_competition(comp), "train"), n_splits=2, seed=0)
    fileio.write_csv(tmp_path / "folds.csv", folds)
    counts = {}
    real = train_module.train_one_epoch

    def counted(f, stage, state, progress, diverged=None):
        counter = CopyCounter(monkeypatch)
        try:
            return real(f, stage, state, progress, diverged)
        finally:
            counts.setdefault(f.cfg.batch_size, counter.calls)
            monkeypatch.setattr(torch.Tensor, "to", REAL_TO)
            monkeypatch.setattr(torch, "tensor", REAL_TENSOR)

    monkeypatch.setattr(train_module, "train_one_epoch", counted)
    for batch in (8, 4):  # 23 training rows: 2 steps, then 5
        cfg = TrainConfig(
            name=f"b{batch}", competition=str(comp), folds=str(tmp_path / "folds.csv"),
            n_folds=2, img_size=16, batch_size=batch, epochs=1, cache_dir=str(tmp_path / "c"),
            num_workers=0, device="cpu", data_on_device="yes", mixup=0.4, hue=0.1,
            auto_augment="trivial", supercat_weight=0.5,
        )  # fmt: skip
        train_module.train_fold(cfg, read_data(cfg), tmp_path / cfg.name, 0, progress=False)
    assert counts[8] == counts[4]
