"""The commands on a train.csv competition, without training: synth of each format, prior,
validate (through the manifest or a folder), score (by the competition's metric), the OOF's
own metric."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fathom import fileio
from fathom.formats import oof_metric
from fathom.synth import write_synthetic


@pytest.fixture(scope="module")
def comps(tmp_path_factory):
    root = tmp_path_factory.mktemp("csvcomps")
    for fmt in ("single", "set", "onehot", "ranked"):
        write_synthetic(root / fmt, "csv", progress=False, format=fmt, n_train=60, n_eval=20)
    return root


@pytest.mark.parametrize("fmt", ["single", "set", "onehot", "ranked"])
def test_synth_and_prior_of_each_format_validate_and_score(comps, tmp_path, run_cli, fmt):
    comp = comps / fmt
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    truth = pd.read_csv(comp / "hidden" / "test_truth.csv", dtype=str)
    assert list(truth.columns) == list(sample.columns)
    assert list(truth.iloc[:, 0]) == list(sample.iloc[:, 0])
    out = tmp_path / "prior.csv"
    code, _, err = run_cli("prior", comp, "--out", out)
    assert code == 0, err
    assert list(pd.read_csv(out, dtype=str).iloc[:, 0]) == list(sample.iloc[:, 0])
    code, stdout, err = run_cli("validate", out, "--folder", comp)
    assert code == 0 and "valid (20 test images)" in stdout, err
    # the truth's hidden/ folder names the competition; its metric scores the file
    code, stdout, err = run_cli(
        "score", out, "--truth", comp / "hidden" / "test_truth.csv", "--json"
    )
    assert code == 0, err
    metric = {"single": "accuracy", "set": "mean_f1", "onehot": "auc", "ranked": "map@5"}[fmt]
    assert json.loads(stdout)["metric"] == metric
    # the truth scores itself perfectly
    code, stdout, err = run_cli(
        "score", comp / "hidden" / "test_truth.csv", "--truth", comp / "hidden" / "test_truth.csv",
        "--comp", comp, "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(stdout)["score"] == pytest.approx(1.0), err


def test_validate_finds_the_competition_in_the_manifest(comps, tmp_path, run_cli):
    comp = comps / "single"
    sub = tmp_path / "s.csv"
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    fileio.write_csv(sub, sample.iloc[::-1])  # every id, in the wrong order
    code, _, err = run_cli("validate", sub)
    assert code == 2 and "no manifest beside it names its competition" in err
    fileio.write_json(tmp_path / "s.json", {"competition": str(comp)})
    code, out, err = run_cli("validate", sub)
    assert code == 1
    assert (
        f"line 2: id {sample.iloc[-1, 0]} where sample_submission.csv has {sample.iloc[0, 0]}"
        in out
    )


def test_score_refuses_another_format_in_one_line(comps, tmp_path, run_cli):
    sub = tmp_path / "s.csv"
    fileio.write_csv(sub, pd.DataFrame({"id": ["a"], "label": ["0"]}))
    truth = comps / "single" / "hidden" / "test_truth.csv"
    code, _, err = run_cli("score", sub, "--truth", truth)
    assert (
        code == 2 and f"{sub}: header `id,label` is not the competition's `image_id,label`" in err
    )


def test_oof_metric_is_the_competitions_own(comps, small_comp):
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    targets = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])
    fold = np.array([0, 0, 1, 1])
    # an accuracy competition with two classes would be odd; the function reads the metric
    single = oof_metric(
        str(comps / "single"),
        np.pad(probs, ((0, 0), (0, 3))),
        np.pad(targets, ((0, 0), (0, 3))),
        fold,
    )
    assert single["metric"] == "accuracy" and single["value"] == 0.75
    assert single["per_fold"] == {0: 1.0, 1: 0.5}
    assert oof_metric(str(small_comp), probs, targets, fold) is None  # FathomNet: MAP@20 as before
    assert oof_metric(None, probs, targets, fold) is None
