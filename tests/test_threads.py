"""fathom/engine/threads.py: the stage clock (wall and CPU seconds, child processes included)
and `run_folds` (folds trained side by side in worker processes, one torch thread each)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from engine_fixtures import one_thread, tiny_comp  # noqa: F401 - fixtures

from fathom.engine.threads import FoldJob, StageClock, run_folds, train_job
from fathom.errors import FathomError
from fathom.runs import read_predictions

BURN = "import time\nx = 0\nfor i in range(3_000_000): x += i\nprint(time.process_time())"


def test_stage_clock_counts_stages_in_order_and_the_cpu_of_child_processes():
    clock = StageClock()
    clock.begin("first")
    clock.begin("child")  # ends "first"
    out = subprocess.run([sys.executable, "-c", BURN], capture_output=True, text=True, check=True)
    child_cpu = float(out.stdout)
    with clock.stage("last"):
        pass
    clock.end()  # nothing open: a no-op
    assert [r["stage"] for r in clock.rows] == ["first", "child", "last"]
    child = clock.rows[1]
    # the child's own CPU seconds are in the stage that ran it (RUSAGE_CHILDREN)
    assert child["cpu_s"] >= 0.9 * child_cpu > 0
    total = clock.total()
    assert total["cpu_s"] == pytest.approx(sum(r["cpu_s"] for r in clock.rows))
    assert total["wall_s"] == pytest.approx(sum(r["wall_s"] for r in clock.rows))
    lines = clock.table().splitlines()
    assert lines[0].split() == ["stage", "wall", "s", "CPU", "s", "cores"]
    assert [line.split()[0] for line in lines[1:]] == ["first", "child", "last", "total"]


def _jobs(tiny_comp, tmp_path, folds=(0, 1), extra=()):  # noqa: F811
    comp, folds_csv = tiny_comp
    args = (
        f"competition={comp}",
        f"folds={folds_csv}",
        "n_folds=2",
        "img_size=16",
        "batch_size=8",
        "epochs=2",
        f"cache_dir={tmp_path / 'cache'}",
        "num_workers=0",
        "device=cpu",
        *extra,
    )
    return [
        FoldJob("default", args, "tiny", str(tmp_path / "runs"), k, str(tmp_path / f"f{k}.log"))
        for k in folds
    ]


def test_run_folds_trains_each_fold_as_the_same_fold_trained_alone(tiny_comp, tmp_path):  # noqa: F811
    """Two folds in two worker processes give the files one process gives fold by fold."""
    par, seq = tmp_path / "par", tmp_path / "seq"
    ended = []
    seconds = run_folds(
        _jobs(tiny_comp, par), workers=2, done=lambda job, s: ended.append(job.fold)
    )
    assert sorted(ended) == [0, 1]
    assert all(s["cpu_s"] > 0 and s["wall_s"] > 0 for s in seconds)
    for job in _jobs(tiny_comp, seq):
        train_job(job)
    for k in (0, 1):
        a = read_predictions(par / "runs" / "tiny" / f"fold{k}" / "oof.npz")
        b = read_predictions(seq / "runs" / "tiny" / f"fold{k}" / "oof.npz")
        np.testing.assert_array_equal(a["ids"], b["ids"])
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
        # the worker's printed epochs went to its log, not to the terminal
        assert "epoch 2/2" in (par / f"f{k}.log").read_text()


def test_run_folds_raises_a_workers_one_line_error(tiny_comp, tmp_path):  # noqa: F811
    jobs = _jobs(tiny_comp, tmp_path, folds=(0,), extra=("epcohs=3",))
    with pytest.raises(FathomError, match="epcohs"):
        run_folds(jobs, workers=1)
