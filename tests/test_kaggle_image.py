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
from kaggle_fake import kernel_template

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


# --- the dependency wheels a kernel brings -------------------------------------------------


def _fathom_wheel(folder: Path, requires: list[str]) -> Path:
    import zipfile

    wheel = folder / "fathom-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        meta = "Metadata-Version: 2.1\nName: fathom\nVersion: 0.1.0\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        zf.writestr("fathom-0.1.0.dist-info/METADATA", meta)
    return wheel


def test_a_kernel_installs_what_the_image_lacks_or_has_too_old_and_never_torch(tmp_path, capsys):
    tpl = kernel_template()
    weights = tmp_path / "weights"
    weights.mkdir()
    fathom_wheel = _fathom_wheel(
        weights, ["torch>=2.4", "timm>=1.0.9", "huggingface_hub>=0.23", "numpy<3,>=2.0"]
    )
    for name in (
        "iterative_stratification-0.1.9-py3-none-any.whl",
        "timm-1.0.31-py3-none-any.whl",
        "huggingface_hub-2.4.0-py3-none-any.whl",
        "torch-2.14.1-cp312-cp312-manylinux_2_28_x86_64.whl",  # never over the image's torch
    ):
        (weights / name).write_bytes(b"")
    assert tpl.declared_floors(fathom_wheel) == {
        "torch": "2.4", "timm": "1.0.9", "huggingface-hub": "0.23", "numpy": "2.0",
    }  # fmt: skip
    # Kaggle's image as issue 17 found it: no iterstrat, an older timm, a recent hub
    image = {"timm": "1.0.3", "huggingface-hub": "0.30.2", "torch": "2.10.0+cu128"}

    def have(dist):  # importlib.metadata.version matches names as pip does
        return image.get(tpl._canonical(dist))

    chosen = tpl.wheels_to_install(weights, fathom_wheel, have=have)
    assert [w.name.split("-")[0] for w in chosen] == ["iterative_stratification", "timm"]
    out = capsys.readouterr().out
    assert "timm 1.0.31 from the dataset (the image has 1.0.3 < 1.0.9)" in out
    assert "huggingface_hub 0.30.2 from the image" in out
    assert "the image's torch stays" in out
    # an image at or above every floor keeps its own
    image = {"iterative-stratification": "0.1.7", "timm": "1.0.9", "huggingface-hub": "0.23.0"}
    assert tpl.wheels_to_install(weights, fathom_wheel, have=have) == []


def test_runtime_wheels_come_from_the_cache_or_one_download_each(tmp_path):
    from fathom.errors import FathomError
    from fathom.kaggle import wheels

    fetched = []

    def download(dist, version, dest):
        fetched.append(dist)
        stem = wheels.canonical(dist).replace("-", "_")
        (dest / f"{stem}-{version}-py3-none-any.whl").write_bytes(b"")

    got = wheels.runtime_wheels(tmp_path, download=download)
    assert fetched == list(wheels.RUNTIME_WHEELS)
    assert all(p.name.endswith("-py3-none-any.whl") and p.parent == tmp_path for p in got)
    assert wheels.runtime_wheels(tmp_path, download=download) == got  # cached: no second fetch
    assert len(fetched) == len(wheels.RUNTIME_WHEELS)
    assert not wheels.NEVER_SHIPPED & {wheels.canonical(d) for d in wheels.RUNTIME_WHEELS}

    def binary_only(dist, version, dest):
        (dest / f"{dist}-{version}-cp312-cp312-manylinux_2_28_x86_64.whl").write_bytes(b"")

    with pytest.raises(FathomError, match="no pure-Python .py3-none-any. wheel of"):
        wheels.runtime_wheels(tmp_path / "other", download=binary_only)
