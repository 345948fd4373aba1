# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""fathom on an image that is not its own (Kaggle's): no iterstrat, an older timm or
huggingface_hub. Each case stands in for the missing or older package at the import or
call boundary, so these run in seconds here; `make kaggle-check` runs the real kernels in a
Python 3.12 environment built like Kaggle's."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom.config import TrainConfig
from fathom.engine import losses, pretrained

ROOT = Path(__file__).resolve().parents[1]

# a meta-path finder that answers "no such module" for iterstrat, as on Kaggle's image
BLOCK_ITERSTRAT = """
import sys
class NoIterstrat:
    def find_spec(self, name, path=None, target=None):
        if name == "iterstrat" or name.startswith("iterstrat."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoIterstrat())
"""


def _python(code: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_ITERSTRAT + code, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tiny_run(tiny_comp, tmp_path_factory):
    from fathom.data import read_data
    from fathom.engine.train import train_run

    tmp = tmp_path_factory.mktemp("image")
    torch.set_num_threads(1)
    cfg = tiny_config(tiny_comp, tmp, epochs=1)
    return cfg, train_run(cfg, read_data(cfg), tmp / "runs", [0], progress=False)


def test_predict_runs_where_iterstrat_is_missing(tiny_run, tmp_path):
    cfg, run_dir = tiny_run
    code = """
import fathom.data, fathom.engine.predict, fathom.submit, fathom.tune
from fathom.cli import main
try:
    main(sys.argv[1:])
finally:
    assert "iterstrat" not in sys.modules
"""
    result = _python(
        code, "predict", run_dir, "--comp", cfg.competition, "--cache-dir", cfg.cache_dir,
        "--device", "cpu", "--out", tmp_path / "preds",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "preds" / "eval.npz").is_file()


def test_folds_without_iterstrat_says_what_to_install_in_one_line(tiny_comp, tmp_path):
    comp, _ = tiny_comp
    code = "from fathom.cli import main\nmain(sys.argv[1:])\n"
    result = _python(code, "folds", comp, "--out-dir", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fathom folds: error: multilabel folds need iterative-stratification: "
        "`pip install iterative-stratification`"
    ]


class OldTimmASL(torch.nn.Module):
    """timm's AsymmetricLossMultiLabel as releases before `reduction=` have it: the same
    arguments less `reduction`, and the batch's sum as the loss."""

    def __init__(self, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8, disable_torch_grad_focal_loss=False):  # fmt: skip
        super().__init__()
        from timm.loss import AsymmetricLossMultiLabel

        self.loss = AsymmetricLossMultiLabel(gamma_neg, gamma_pos, clip, eps, reduction="sum")

    def forward(self, x, y):
        return self.loss(x, y)


def test_asl_is_a_batch_mean_with_and_without_timms_reduction_argument(monkeypatch):
    cfg = TrainConfig(task="multilabel", loss="asl")
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    y = (torch.rand(6, 5, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    today = losses.build_loss(cfg, y.numpy(), 5)(logits, y)
    monkeypatch.setattr(losses, "AsymmetricLossMultiLabel", OldTimmASL)
    old = losses.build_loss(cfg, y.numpy(), 5)
    assert isinstance(old, losses.BatchMeanASL)
    assert torch.allclose(old(logits.half(), y), today, rtol=1e-3)
    assert old(logits.half(), y).dtype == torch.float32


def test_an_older_huggingface_hub_without_remote_entry_not_found_still_imports(monkeypatch):
    class EntryNotFoundError(Exception):
        pass

    class LocalEntryNotFoundError(EntryNotFoundError):
        pass

    old = types.ModuleType("huggingface_hub.errors")  # a release before RemoteEntryNotFoundError
    old.EntryNotFoundError = EntryNotFoundError
    old.LocalEntryNotFoundError = LocalEntryNotFoundError
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", old)
    here, there = pretrained._hub_missing_file_errors()
    assert (here, there) == (LocalEntryNotFoundError, EntryNotFoundError)


def test_a_long_hub_error_is_shortened_at_a_word_boundary():
    text = "Cannot find the requested files in the disk cache and outgoing traffic " * 5
    short = pretrained._first_words(text + "\nsecond line")
    assert short.endswith(" ...") and len(short) <= 200
    assert text.startswith(short[: -len(" ...")] + " ")  # whole words, none cut
