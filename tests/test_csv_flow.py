"""Issue 20's "done when": a train.csv competition of each format goes through `fathom folds`,
`train default competition=D folds=F`, `oof`, `tune`, `submit`, and `validate` with no other
flags, and the tuned submission beats the format's trivial baseline (`fathom prior`) on the
hidden truth; `report` shows the competition's metric. Real training (fathom_cnn, 32 px, CPU),
in-process: about 10 s of CPU each (18-40 s wall on a busy shared 2-core machine). Measured margins (tuned vs prior): single 0.93 vs 0.40 accuracy, set 0.95 vs
0.27 mean F1, onehot 0.92 vs 0.50 AUC, ranked 0.82 vs 0.44 MAP@5."""

from __future__ import annotations

import json

import pytest

# (format, folds file, training images, epochs): enough for the small CNN to learn the looks
CASES = [
    ("single", "skf3", 150, 4),
    ("set", "mlskf3", 150, 4),
    ("onehot", "skf3", 120, 3),
    ("ranked", "mlskf3", 150, 5),
]


@pytest.mark.parametrize("fmt, folds, n_train, epochs", CASES, ids=[c[0] for c in CASES])
def test_a_csv_competition_goes_from_files_to_a_submission_that_beats_its_prior(
    tmp_path, monkeypatch, run_cli, fmt, folds, n_train, epochs
):
    monkeypatch.chdir(tmp_path)  # runs/, folds/, cache/ and submissions/ land here

    def ok(*args):
        code, out, err = run_cli(*args)
        assert code == 0, f"fathom {' '.join(map(str, args))}: {err}"
        return out

    ok("synth", "D", "--kind", "csv", "--format", fmt, "--n-train", n_train, "--n-eval", 40)
    assert "folds/" + folds in ok("folds", "D", "--n-splits", 3)
    ok(
        "train", "default", "competition=D", f"folds=folds/{folds}.csv", "n_folds=3",
        f"epochs={epochs}", "--no-progress",
    )  # fmt: skip
    config = json.loads((tmp_path / "runs" / "default" / "config.json").read_text())
    assert config["task"] == ("singlelabel" if fmt in ("single", "onehot") else "multilabel")
    assert "(the competition's metric)" in ok("oof", "runs/default")
    ok("tune", "runs/default", "--out", "T.json")
    tuning = json.loads((tmp_path / "T.json").read_text())
    assert tuning["format"]["format"] == fmt
    assert (tuning["thresholds"] is not None) == (fmt == "set")  # label sets need thresholds
    assert ("new" in tuning["format"]) == (fmt == "ranked")  # where new_whale goes, learnt
    ok("submit", "T.json", "--name", "N")
    ok("report", "runs/default", "--tune", "T.json", "--out", "R")
    label = {"single": "accuracy", "set": "mean F1", "onehot": "mean column AUC", "ranked": "MAP@5"}
    assert label[fmt] in (tmp_path / "R" / "index.html").read_text()  # the competition's metric
    assert "valid (40 test images)" in ok("validate", "submissions/N.csv")
    ok("prior", "D", "--out", "submissions/prior.csv")
    truth = "D/hidden/test_truth.csv"
    tuned = json.loads(ok("score", "submissions/N.csv", "--truth", truth, "--json"))
    prior = json.loads(ok("score", "submissions/prior.csv", "--truth", truth, "--json"))
    assert tuned["metric"] == prior["metric"] == tuning["ensemble"]["metric"]
    assert tuned["score"] > prior["score"] + 0.1, (tuned, prior)
