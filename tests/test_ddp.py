# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""DDP through torchrun on CPU (gloo): two processes train one fold with the same command."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom.runs import read_predictions

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_processes_train_a_fold(tiny_comp, tmp_path):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, epochs=2, stage1_epochs=1, accumulate=2)
    overrides = [
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v}"
        for k, v in cfg.to_dict().items()
        if k != "name"
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "fathom",
        "train",
        "default",
        "--name",
        "ddp",
        "--fold",
        "0",
        "--runs",
        str(tmp_path / "runs"),
        "--no-progress",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "runs" / "ddp" / "fold0"
    history = pd.read_csv(out / "history.csv")
    assert history["stage"].tolist() == [1, 2] and np.isfinite(history["val_map20"]).all()
    folds = pd.read_csv(cfg.folds, dtype={"id": str})
    oof = read_predictions(out / "oof.npz")
    # both ranks' shards gathered back: every validation image once, in order
    assert sorted(oof["ids"]) == sorted(folds["id"][folds["fold"] == 0])
    assert len(read_predictions(out / "eval.npz")["ids"]) == 16
    assert done.stdout.count("fold0 epoch 2/2") == 1  # rank 0 alone reports
