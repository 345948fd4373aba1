# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""The CUDA path, run by `make gpu-check` (`pytest -m gpu`); skipped where there is no GPU.

A few steps of a small timm model at 64 px under bf16 and fp16, channels_last, torch.compile,
the cache on the device and through the loader, and a one-process NCCL DDP step."""

import numpy as np
import pandas as pd
import pytest
import torch
from engine_fixtures import tiny_comp, tiny_config  # noqa: F401

from fathom.data import read_data
from fathom.data.augment import Preprocess
from fathom.engine import precision
from fathom.engine.train import train_fold

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    "changes",
    [
        dict(amp="bf16", channels_last=True, data_on_device="yes"),
        dict(amp="fp16", channels_last=True, data_on_device="yes"),
        dict(amp="auto", channels_last=False, data_on_device="no", num_workers=2),
        dict(amp="auto", channels_last=True, data_on_device="yes", compile=True),
    ],
    ids=["bf16-device", "fp16-device", "auto-loader", "compile"],
)
def test_a_small_timm_model_trains_on_the_gpu(tiny_comp, tmp_path, changes):
    cfg = tiny_config(
        tiny_comp, tmp_path, model="resnet10t", img_size=64, device="cuda", epochs=2, ema=True,
        **changes,
    )  # fmt: skip
    out = train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    last = torch.load(out / "last.pt", weights_only=True)
    assert (out / "oof.npz").is_file() and (out / "eval.npz").is_file()
    # `auto` is fp16 below sm_80 (a T4, a V100): a scaler state there too
    amp = precision.autocast_dtype(changes["amp"], torch.device("cuda"))
    assert bool(last["scaler"]) == (amp == torch.float16)
    assert last["cuda_rng"] and len(last["cuda_rng"]) == torch.cuda.device_count()


def test_a_run_resumed_on_the_gpu_repeats_its_dropout(tiny_comp, tmp_path, monkeypatch):
    """Dropout and drop-path draw from the CUDA generator: resuming from last.pt must continue
    it, not restart it at the seed (issue 18.4)."""
    cfg = tiny_config(
        tiny_comp, tmp_path, model="resnet10t", img_size=64, device="cuda", epochs=3,
        drop_rate=0.5, drop_path_rate=0.2, amp="off", data_on_device="yes",
    )  # fmt: skip
    torch.backends.cudnn.deterministic = True
    data = read_data(cfg)
    train_fold(cfg, data, tmp_path / "straight", 0, progress=False)
    calls, real = {"n": 0}, Preprocess.train

    def dies_in_epoch_2(self, images, generator):
        calls["n"] += 1
        if calls["n"] == per_epoch + 1:
            raise KeyboardInterrupt
        return real(self, images, generator)

    from fathom.data.loader import fold_rows, train_batches

    per_epoch = len(train_batches(len(fold_rows(data, 0)[0]), cfg.batch_size, cfg.seed, 0))
    monkeypatch.setattr(Preprocess, "train", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_fold(cfg, data, tmp_path / "resumed", 0, progress=False)
    monkeypatch.setattr(Preprocess, "train", real)
    train_fold(cfg, data, tmp_path / "resumed", 0, progress=False)
    cols = ["train_loss", "val_loss"]
    a, b = (
        pd.read_csv(tmp_path / r / "fold0" / "history.csv")[cols] for r in ("straight", "resumed")
    )
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5)


def test_one_process_nccl_ddp_step(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        model = torch.nn.Linear(8, 2).cuda()
        ddp = DistributedDataParallel(model, device_ids=[torch.cuda.current_device()])
        loss = ddp(torch.randn(4, 8, device="cuda")).square().mean()
        loss.backward()
        assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()
    finally:
        dist.destroy_process_group()
