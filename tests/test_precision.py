# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Mixed precision: what `amp` means on each GPU, old boolean configs and checkpoints, and
the fp16 path (autocast + GradScaler, its state resumed) run on a CPU."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom.config import apply_overrides, config_differences, from_dict, load_config
from fathom.data import read_data
from fathom.data.augment import Preprocess
from fathom.data.loader import fold_rows, train_batches
from fathom.engine import precision
from fathom.engine.precision import autocast_dtype
from fathom.engine.train import train_fold
from fathom.errors import FathomError

CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")


@pytest.mark.parametrize(
    "amp, device, capability, dtype",
    [
        ("auto", CUDA, (9, 0), torch.bfloat16),  # H100
        ("auto", CUDA, (8, 0), torch.bfloat16),  # A100
        ("auto", CUDA, (7, 5), torch.float16),  # T4 (Kaggle)
        ("auto", CUDA, (6, 0), torch.float16),  # P100 (Kaggle)
        ("auto", CUDA, (7, 0), torch.float16),  # V100
        ("auto", CPU, None, None),  # the CPU demo stays float32
        ("bf16", CUDA, (7, 5), torch.bfloat16),  # asked for: taken
        ("fp16", CPU, None, torch.float16),
        ("bf16", CPU, None, torch.bfloat16),
        ("off", CUDA, (9, 0), None),
    ],
)
def test_amp_picks_the_dtype_each_gpu_runs_natively(amp, device, capability, dtype):
    assert autocast_dtype(amp, device, capability) == dtype


def test_old_boolean_amp_reads_as_auto_or_off(tmp_path):
    assert from_dict({"amp": True}).amp == "auto"
    assert from_dict({"amp": False}).amp == "off"
    assert apply_overrides(from_dict({}), ["amp=false"]).amp == "off"
    assert apply_overrides(from_dict({}), ["amp=fp16"]).amp == "fp16"
    (tmp_path / "old.toml").write_text("amp = true\n")
    assert load_config(str(tmp_path / "old.toml")).amp == "auto"
    # a run folder or last.pt written with amp = true resumes under amp = "auto"
    assert config_differences({"amp": True}, {"amp": "auto"}) == []
    assert config_differences({"amp": True}, {"amp": "fp16"}) == ["amp"]
    with pytest.raises(FathomError, match="amp must be one of auto, bf16, fp16, off"):
        from_dict({"amp": "fp8"})


def test_fp16_with_its_scaler_trains_on_cpu_and_resumes_its_loss_scale(
    tiny_comp, tmp_path, monkeypatch
):
    cfg = tiny_config(tiny_comp, tmp_path, epochs=3, amp="fp16", grad_clip=1.0)
    data = read_data(cfg)
    # a loss scale that overflows fp16 at first, so that steps are skipped and the scale backs
    # off as on a GPU; a resumed run that forgot it would start again from the default 65536
    overflowing = lambda device, dtype: torch.amp.GradScaler(  # noqa: E731
        device.type, init_scale=2.0**27, enabled=dtype == torch.float16
    )
    monkeypatch.setattr(precision, "grad_scaler", overflowing)
    train_fold(cfg, data, tmp_path / "straight", 0, progress=False)
    last = torch.load(tmp_path / "straight" / "fold0" / "last.pt", weights_only=True)
    assert 65536.0 < last["scaler"]["scale"] < 2.0**27, last["scaler"]  # backed off
    history = pd.read_csv(tmp_path / "straight" / "fold0" / "history.csv")
    assert history["train_loss"].notna().all()

    calls = {"n": 0}
    real = Preprocess.train
    per_epoch = len(train_batches(len(fold_rows(data, 0)[0]), cfg.batch_size, cfg.seed, 0))

    def dies_in_epoch_3(self, images, params):
        calls["n"] += 1
        if calls["n"] == 2 * per_epoch + 1:
            raise KeyboardInterrupt
        return real(self, images, params)

    monkeypatch.setattr(Preprocess, "train", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_fold(cfg, data, tmp_path / "resumed", 0, progress=False)
    monkeypatch.undo()  # the default scaler again: the scale must come from last.pt
    train_fold(cfg, data, tmp_path / "resumed", 0, progress=False)
    resumed = torch.load(tmp_path / "resumed" / "fold0" / "last.pt", weights_only=True)
    assert resumed["scaler"] == last["scaler"]
    pd.testing.assert_frame_equal(
        pd.read_csv(Path(tmp_path / "resumed" / "fold0" / "history.csv")).drop(
            columns=["seconds", "images_per_s"]
        ),
        history.drop(columns=["seconds", "images_per_s"]),
    )


def test_bf16_autocast_trains_on_cpu(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1, amp="bf16")
    train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    last = torch.load(tmp_path / "runs" / "fold0" / "last.pt", weights_only=True)
    assert last["scaler"] == {}  # bf16 needs no loss scaling
    assert (tmp_path / "runs" / "fold0" / "oof.npz").is_file()
