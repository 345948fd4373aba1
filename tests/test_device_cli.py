# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Issue 21.2 and 22 through the command line on this CPU-only machine: `--gpus` and
`device=cuda` where CUDA sees no GPU are one line with exit status 2, and nothing trains."""

import pytest
import torch
from engine_fixtures import one_thread, tiny_comp  # noqa: F401

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _train(tiny_comp, tmp_path, *extra):
    comp, folds = tiny_comp
    return [
        "train", "default", f"competition={comp}", f"folds={folds}", "n_folds=2", "epochs=1",
        "img_size=16", "num_workers=0", f"cache_dir={tmp_path / 'cache'}",
        "--runs", str(tmp_path / "runs"), "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "extra, said",
    [
        (["--gpus", "0"], "--gpus 0: PyTorch sees no CUDA GPU here"),
        (["--gpus", "3", "--fold", "0"], "--gpus 3: PyTorch sees no CUDA GPU here"),
        (["device=cuda", "--fold", "0"], "device = cuda: PyTorch sees no CUDA GPU here"),
        (["device=cuda:1", "--fold", "0"], "device = cuda:1: PyTorch sees no CUDA GPU here"),
    ],
)
def test_a_gpu_asked_for_where_there_is_none_is_one_line(run_cli, tiny_comp, tmp_path, extra, said):
    code, out, err = run_cli(*_train(tiny_comp, tmp_path, *extra))
    assert code == 2, err
    assert said in err and len(err.strip().splitlines()) == 1
    assert "[gpu" not in out and "bug in fathom" not in err
    assert not list((tmp_path / "runs").glob("*/fold*/last.pt"))
