# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Issue 18.9-18.10: a cache goes to the device through fixed-size chunks (host memory
bounded whatever its size), and whether a fold's images live on the device is decided once,
for everything that will live there, with a line when they do not."""

import tracemalloc

import numpy as np
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

import fathom.data.loader as loader
import fathom.engine.train as train_module
from fathom.data import read_data
from fathom.data.loader import ImageSource, device_plan, upload

CPU = torch.device("cpu")


def _cache(tmp_path, n=40, side=32):
    path = tmp_path / "c.npy"
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, side, side, 3))
    images[:] = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    images.flush()
    return path, np.load(path)


def test_upload_is_the_array_whatever_the_chunk(tmp_path):
    path, expected = _cache(tmp_path)
    memmap = np.load(path, mmap_mode="r")
    for chunk in (1, 3072 * 7, 10**9):  # one row, 7 rows, everything at once
        np.testing.assert_array_equal(upload(memmap, CPU, chunk).numpy(), expected)
    assert upload(memmap[:0], CPU).shape == (0, 32, 32, 3)


def test_a_cache_held_on_the_device_is_read_without_a_whole_host_copy(tmp_path, monkeypatch):
    path, expected = _cache(tmp_path, n=200)  # 614 kB
    monkeypatch.setattr(loader, "UPLOAD_CHUNK_BYTES", 3072 * 10)
    tracemalloc.start()
    try:
        source = ImageSource(path, CPU, on_device=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(source.tensor.numpy(), expected)
    # numpy reports its buffers to tracemalloc: a whole-array copy would be >= 614 kB
    assert peak < expected.nbytes // 4


@pytest.mark.parametrize(
    "mode, budget, held, said",
    [
        ("auto", 1000, True, ""),
        ("auto", 600, False, "training cache 0.00 GB, box crops 0.00 GB"),
        ("yes", 10, True, ""),
        ("no", 10**9, False, ""),
    ],
)
def test_the_device_plan_weighs_every_part_together(monkeypatch, mode, budget, held, said):
    monkeypatch.setattr(loader, "device_budget", lambda device: budget)
    hold, why = device_plan(mode, {"training cache": 500, "box crops": 400}, CPU)
    assert hold == held and said in why and (why == "") == (said == "")


def test_crops_that_would_not_fit_beside_the_training_cache_send_both_to_the_loader(
    tiny_comp, tmp_path, monkeypatch, capsys
):
    cfg = tiny_config(tiny_comp, tmp_path, crop_rate=0.5, epochs=1, data_on_device="auto")
    data = read_data(cfg)
    train_bytes = len(data.train) * 16 * 16 * 3
    # the training cache alone fits; with the crops it does not
    monkeypatch.setattr(loader, "device_budget", lambda device: train_bytes + 1)
    held = _record_image_sources(monkeypatch)
    train_module.train_fold(cfg, data, tmp_path / "runs", 0, progress=False)
    assert ("train", False) in held and ("crops", False) in held
    assert not any(on for _, on in held)
    out = capsys.readouterr().out
    assert "fold0: the training images (training cache" in out and "box crops" in out
    assert "DataLoader reads them from the cache files" in out


def _record_image_sources(monkeypatch) -> list[tuple[str, bool]]:
    """(cache kind, held on the device) of every ImageSource a fold opens, in order."""
    held = []
    real = ImageSource.__init__

    def spy(self, path, device, on_device, num_workers=0):
        held.append((path.name.split("-")[1], on_device))
        real(self, path, device, on_device, num_workers)

    monkeypatch.setattr(ImageSource, "__init__", spy)
    return held


def test_a_fold_whose_images_fit_holds_them_all(tiny_comp, tmp_path, monkeypatch, capsys):
    cfg = tiny_config(tiny_comp, tmp_path, crop_rate=0.5, epochs=1, data_on_device="auto")
    monkeypatch.setattr(loader, "device_budget", lambda device: 10**9)
    held = _record_image_sources(monkeypatch)
    train_module.train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    assert ("train", True) in held and ("crops", True) in held
    assert "DataLoader" not in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_upload_to_the_gpu_pins_two_chunks_at_most(tmp_path):
    path, expected = _cache(tmp_path, n=4000, side=64)  # 49 MB
    chunk = 2**20
    torch.cuda.host_memory_stats()  # (the stats exist from here on)
    out = upload(np.load(path, mmap_mode="r"), torch.device("cuda"), chunk)
    np.testing.assert_array_equal(out.cpu().numpy(), expected)
    stats = torch.cuda.host_memory_stats()
    peak = stats.get("allocated_bytes.all.peak", stats.get("allocated_bytes.peak", 0))
    assert peak <= 4 * chunk, stats
