"""A single-label folder dataset through the same commands as a Kaggle competition: cache,
prior, oof, tune, submit, score, report (defect: none of them took a folder dataset)."""

import json

import numpy as np
import pandas as pd
import pytest
from folder_fixtures import make_dataset

from fathom import fileio
from fathom.data import open_dataset
from fathom.runs import write_predictions

CLASSES = ("carp", "perch", "tilapia")


@pytest.fixture
def fish(tmp_path):
    counts = {"carp": 6, "perch": 3, "tilapia": 2}
    root = make_dataset(
        tmp_path / "fish",
        {"train": counts, "val": {c: 2 for c in CLASSES}, "test": {c: 2 for c in CLASSES}},
        colors={"carp": (200, 10, 10), "perch": (10, 200, 10), "tilapia": (10, 10, 200)},
    )
    test = open_dataset(root).split("eval")
    truth = pd.DataFrame({"id": test["id"], "label": [CLASSES[c[0]] for c in test["categories"]]})
    fileio.write_csv(root / "hidden" / "test_truth.csv", truth)
    return root


def _run(root, data, name, quality, seed):
    """A finished single-split run (val/ is fold 0) whose predictions are right with `quality`."""
    ds = open_dataset(data)
    rng = np.random.default_rng(seed)
    run = root / name
    fileio.write_json(
        run / "config.json",
        {"name": name, "task": "singlelabel", "competition": str(data), "n_folds": 1},
    )
    for split, fname in (("train", "oof.npz"), ("eval", "eval.npz")):
        table = ds.split(split)
        if split == "train":
            table = table[table["id"].str.startswith("val/")]
        y = np.array([c[0] for c in table["categories"]])
        logits = rng.normal(0, 1, (len(y), 3)) + quality * 4 * np.eye(3)[y]
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        truth = np.eye(3)[y] if split == "train" else None
        write_predictions(
            run / "fold0" / fname,
            table["id"],
            probs,
            logits,
            rng.random((len(y), 4)),
            range(3),
            truth,
        )
    fileio.write_csv(
        run / "fold0" / "history.csv",
        pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_accuracy": [0.5, 0.7]}),
    )
    (run / "fold0" / "best.pt").write_bytes(b"weights")
    return run


def test_folder_dataset_goes_from_oof_to_a_scored_submission(fish, tmp_path, run_cli):
    good = _run(tmp_path / "runs", fish, "good", 1.0, 0)
    weak = _run(tmp_path / "runs", fish, "weak", 0.2, 1)
    for run in (good, weak):
        code, out, err = run_cli("oof", run)
        assert code == 0, err

    tune = tmp_path / "tune.json"
    code, out, err = run_cli("tune", good, weak, "--prior", "--out", tune)
    assert code == 0, err
    tuning = json.loads(tune.read_text())
    assert tuning["task"] == "singlelabel" and tuning["ensemble"]["metric"] == "accuracy"
    assert tuning["osd"]["scorer"] is None and tuning["thresholds"] is None
    assert "OOF accuracy" in out
    # one validation split: fitted weights cannot be scored held-out, so they are never chosen
    assert tuning["ensemble"]["method"] in ("mean", "rank")

    subs = tmp_path / "subs"
    code, out, err = run_cli("submit", tune, "--name", "fish", "--out-dir", subs)
    assert code == 0, err
    sub = pd.read_csv(subs / "fish.csv")
    assert list(sub.columns) == ["id", "label"] and set(sub["label"]) <= set(CLASSES)
    manifest = json.loads((subs / "fish.json").read_text())
    assert manifest["cv"]["metric"] == "accuracy" and manifest["osd"]["scorer"] is None
    code, out, err = run_cli("validate", subs / "fish.csv", "--folder", fish)
    assert code == 0 and "valid (6 test images)" in out

    code, out, err = run_cli(
        "score", subs / "fish.csv", "--truth", fish / "hidden" / "test_truth.csv", "--json"
    )
    assert code == 0, err
    scores = json.loads(out)
    assert 0 <= scores["accuracy"] <= 1 and "macro_f1" in scores and scores["n"] == 6

    code, out, err = run_cli("prior", fish, "--out", tmp_path / "prior.csv")
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "prior.csv")["label"]) == {"carp"}  # the most frequent class

    code, out, err = run_cli("cache", fish, "--size", 8, "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert "train: 17 images" in out and "eval: 6 images" in out

    code, out, err = run_cli("report", good, weak, "--tune", tune, "--out", tmp_path / "report")
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text()
    assert "accuracy" in page and "osd scores" not in page


def test_score_says_which_format_a_folder_truth_wants(fish, tmp_path, run_cli):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,categories,osd\na,1,0.5\n")
    code, _, err = run_cli("score", bad, "--truth", fish / "hidden" / "test_truth.csv")
    assert code == 2 and "single-label (`id,label`)" in err and len(err.strip().splitlines()) == 1
