"""The four submission formats of a train.csv competition: tuning on OOF (new-token
insertion), making, validating, scoring, and the prior baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_csv_layout import make_comp

from fathom.data import open_dataset
from fathom.data.csvtable import open_layout
from fathom.errors import FathomError
from fathom.formats import (
    NEW,
    make_frame,
    new_truth,
    prior_frame,
    ranked_ap,
    ranked_lists,
    score_frame,
    tune_new_token,
)
from fathom.metrics import map_at_k
from fathom.submission import validate_table

WHALE_TRAIN = "Image,Id\na.jpg,w_1\nb.jpg,new_whale\nc.jpg,w_2\nd.jpg,w_2\ne.jpg,w_3\n"
WHALE_SUB = "Image,Id\nt1.jpg,new_whale w_1 w_2\nt2.jpg,new_whale w_1 w_2\n"
WHALE_TOML = 'metric = "map@3"\nnew_label = "new_whale"\n'


@pytest.fixture
def whale(tmp_path):
    return open_layout(make_comp(tmp_path / "w", WHALE_TRAIN, WHALE_SUB, WHALE_TOML))


def test_ranked_ap_is_map_of_the_lists_it_stands_for():
    rng = np.random.default_rng(1)
    probs = np.round(rng.random((50, 6)), 1)  # ties on purpose
    truth = rng.integers(-1, 6, 50)
    for t in (-1.0, 0.35, 0.8, 2.0):
        lists = ranked_lists(probs, probs, 4, t)
        want = map_at_k(lists, [{c} for c in truth], 4)
        assert ranked_ap(probs, truth, t, 4).mean() == pytest.approx(want)


def test_new_truth_counts_classes_the_fold_never_trained_on():
    targets = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1]])
    fold = np.array([0, 1, 0, 1, 0, 1])
    # class 1 lives only in fold 0: its fold's model never saw it
    assert list(new_truth(targets, fold)) == [0, 0, NEW, NEW, 2, 2]
    # unless a never-validated row (fold -1) trained every fold on it
    assert list(new_truth(targets, fold, np.array([[0, 1, 0]]))) == [0, 0, 1, NEW, 2, 2]


def test_new_token_threshold_is_learnt_from_confidence():
    rng = np.random.default_rng(0)
    n, c = 300, 8
    truth = np.where(rng.random(n) < 0.3, NEW, rng.integers(0, c, n))
    probs = rng.random((n, c)) * 0.3
    known = truth != NEW
    probs[np.flatnonzero(known), truth[known]] = 0.6 + 0.4 * rng.random(known.sum())
    targets = np.zeros((n, c))
    targets[np.flatnonzero(known), truth[known]] = 1
    fold = np.arange(n) % 3
    # every class in every fold, so only the token's rows are new
    result = tune_new_token(probs, targets, fold, 5)
    assert 0.25 <= result["threshold"] < 0.6
    assert result["map_held_out"] > max(result["map_never"], result["map_first"]) + 0.2
    assert result["map_held_out"] > 0.95


def test_make_validate_and_score_a_ranked_submission(whale):
    ids = ["t1.jpg", "t2.jpg"]
    probs = np.array([[0.9, 0.2, 0.1], [0.1, 0.05, 0.02]])
    tuning = {"format": {"new": {"threshold": 0.5}}}
    frame = make_frame(whale, ids, probs, probs, tuning)
    assert list(frame.columns) == ["Image", "Id"]
    assert list(frame["Id"]) == ["w_1 new_whale w_2", "new_whale w_1 w_2"]
    assert validate_table(frame, whale, ids) == []
    truth = pd.DataFrame({"Image": ids, "Id": ["w_2", "new_whale"]})
    result = score_frame(frame, truth, whale)
    assert result["score"] == pytest.approx((1 / 3 + 1) / 2) and result["metric"] == "map@3"


def test_validate_names_each_problem_with_its_line(whale):
    ids = ["t1.jpg", "t2.jpg"]
    bad = pd.DataFrame({"Image": ["t2.jpg", "t1.jpg"], "Id": ["w_1 W_2", "w_1  w_2 w_3 w_1"]})
    problems = [str(p) for p in validate_table(bad, whale, ids)]
    assert "line 2: id t2.jpg where sample_submission.csv has t1.jpg (keep its order)" in problems
    assert "line 2: 'W_2' is not a class (did you mean 'w_2'?)" in problems
    assert any(p.startswith("line 3: Id 'w_1  w_2 w_3 w_1' has an empty guess") for p in problems)
    assert "line 3: 'w_1' is listed more than once" in problems
    assert "line 3: 5 guesses listed, at most 3 are scored" in problems
    header = pd.DataFrame({"image": ids, "Id": ["w_1", "w_1"]})
    assert "header must be `Image,Id`" in str(validate_table(header, whale, ids)[0])
    short = pd.DataFrame({"Image": ["t1.jpg"], "Id": ["w_1"]})
    assert str(validate_table(short, whale, ids)[-1]) == "1 test image(s) missing, e.g. t2.jpg"


def test_onehot_submission_keeps_the_sample_columns_order(tmp_path):
    train = "image_id,b,a\nr0,1,0\nr1,0,1\nr2,0,1\n"
    sample = "image_id,a,b\nt0,0.5,0.5\nt1,0.5,0.5\n"
    lay = open_layout(make_comp(tmp_path / "c", train, sample))
    assert lay.classes == ("a", "b")  # the sample submission's order
    assert list(open_dataset(lay.root).split("train")["categories"]) == [(1,), (0,), (0,)]
    probs = np.array([[0.1, 0.9], [0.8, 0.2]])  # columns a, b
    frame = make_frame(lay, ["t0", "t1"], probs, probs, {"format": {}})
    assert list(frame.columns) == ["image_id", "a", "b"]
    assert list(frame["a"]) == ["0.100000", "0.800000"]
    assert validate_table(frame, lay, ["t0", "t1"]) == []
    frame.loc[1, "b"] = "high"
    assert (
        str(validate_table(frame, lay, ["t0", "t1"])[0])
        == "line 3: column b: 'high' is not a finite number"
    )
    truth = pd.DataFrame({"image_id": ["t0", "t1"], "a": ["0", "1"], "b": ["1", "0"]})
    frame.loc[1, "b"] = "0.2"
    assert score_frame(frame, truth, lay)["score"] == 1.0
    truth.loc[0, "b"] = "yes"
    with pytest.raises(FathomError, match="truth, line 2, column b: 'yes' is not 0 or 1"):
        score_frame(frame, truth, lay)


def test_set_submission_uses_the_chosen_thresholds(tmp_path):
    train = "image,labels\nr0,a\nr1,a b\nr2,c\n"
    lay = open_layout(make_comp(tmp_path / "c", train, "image,labels\nt0,a\nt1,a\n"))
    probs = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.25]])
    tuning = {
        "format": {"sets": "per_category"},
        "thresholds": {"global": 0.5, "per_category": {"0": 0.5, "1": 0.7, "2": 0.2}},
    }
    frame = make_frame(lay, ["t0", "t1"], probs, probs, tuning)
    # b is below its 0.7; t1's c reaches its 0.2, so its top class b is not forced in (the
    # rule the thresholds were fitted under: the top class only for a row with none)
    assert list(frame["labels"]) == ["a", "c"]
    tuning["format"]["sets"] = "global"
    assert list(make_frame(lay, ["t0", "t1"], probs, probs, tuning)["labels"]) == ["a b", "b"]
    truth = pd.DataFrame({"image": ["t0", "t1"], "labels": ["a b", "c"]})
    assert score_frame(frame, truth, lay)["score"] == pytest.approx((2 / 3 + 1) / 2)
    from fathom.tune import predict_sets

    cut = np.array([0.5, 0.7, 0.2])
    names = np.array(["a", "b", "c"])
    want = [" ".join(names[row]) for row in predict_sets(probs, cut)]
    tuning["format"]["sets"] = "per_category"
    assert list(make_frame(lay, ["t0", "t1"], probs, probs, tuning)["labels"]) == want


def test_priors_are_each_formats_trivial_baseline(whale, tmp_path):
    train = open_dataset(whale.root).split("train")
    frame = prior_frame(whale, train, ["t1.jpg"])
    # w_2 in 2 of 5 images, new_whale / w_1 / w_3 in 1: the token ranks among them, first of
    # the classes tied with it
    assert frame["Id"][0] == "w_2 new_whale w_1"
    root = make_comp(tmp_path / "c", "image_id,label\na,1\nb,0\nc,0\n", "image_id,label\nx,1\n")
    lay = open_layout(root)
    frame = prior_frame(lay, open_dataset(root).split("train"), ["x"])
    assert list(frame.itertuples(index=False, name=None)) == [("x", "0")]
