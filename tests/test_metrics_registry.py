"""The metric registry (competition.toml `metric = "..."`): each metric against a
straightforward reference implementation written out here, on random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fathom.errors import FathomError
from fathom.metrics import (
    check_metric_format,
    macro_f1_labels,
    map_at_k,
    matrix_metric,
    mean_column_auc,
    mean_f1_sets,
    metric_k,
)
from fathom.score import score_frames

RNG = np.random.default_rng(0)


def ref_accuracy(t, p):
    return sum(a == b for a, b in zip(t, p, strict=True)) / len(t)


def ref_macro_f1(t, p):
    f1s = []
    for label in sorted(set(t) | set(p)):
        tp = sum(a == label and b == label for a, b in zip(t, p, strict=True))
        fp = sum(a != label and b == label for a, b in zip(t, p, strict=True))
        fn = sum(a == label and b != label for a, b in zip(t, p, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def ref_mean_f1(true_sets, pred_sets):
    total = 0.0
    for t, p in zip(true_sets, pred_sets, strict=True):
        hits = len(set(t) & set(p))
        if hits:
            precision, recall = hits / len(set(p)), hits / len(set(t))
            total += 2 * precision * recall / (precision + recall)
    return total / len(true_sets)


def ref_map(predicted, actual, k):
    total = 0.0
    for guesses, truth in zip(predicted, actual, strict=True):
        score, hits, used = 0.0, 0, []
        for i, g in enumerate(guesses[:k]):
            if g in truth and g not in used:
                hits += 1
                score += hits / (i + 1)
            used.append(g)
        total += score / min(len(truth), k) if truth else 0.0
    return total / len(actual)


def ref_auc(y, s):
    """Mann-Whitney: the share of (positive, negative) pairs ranked right, ties half."""
    pos = [b for a, b in zip(y, s, strict=True) if a]
    neg = [b for a, b in zip(y, s, strict=True) if not a]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_accuracy_and_macro_f1_match_the_reference():
    labels = list("abcd")
    t = list(RNG.choice(labels, 200))
    p = [x if RNG.random() < 0.6 else RNG.choice(labels + ["e"]) for x in t]
    from sklearn.metrics import accuracy_score

    assert accuracy_score(t, p) == pytest.approx(ref_accuracy(t, p))
    assert macro_f1_labels(t, p) == pytest.approx(ref_macro_f1(t, p))


def test_mean_f1_matches_the_reference():
    labels = list("abcdef")
    t = [list(RNG.choice(labels, RNG.integers(1, 3), replace=False)) for _ in range(150)]
    p = [list(RNG.choice(labels, RNG.integers(0, 4), replace=False)) for _ in range(150)]
    assert mean_f1_sets(t, p) == pytest.approx(ref_mean_f1(t, p))
    assert mean_f1_sets([["a"]], [["a"]]) == 1.0


def test_map_at_k_matches_the_reference_with_duplicates_and_a_new_token():
    labels = ["new_whale"] + [f"w_{i}" for i in range(8)]
    actual = [{str(RNG.choice(labels))} for _ in range(200)]
    predicted = [list(RNG.choice(labels, 6)) for _ in range(200)]  # duplicates included
    for k in (1, 5):
        assert map_at_k(predicted, actual, k) == pytest.approx(ref_map(predicted, actual, k))


def test_mean_column_auc_matches_the_reference():
    y = (RNG.random((120, 4)) < [0.3, 0.1, 0.5, 0.2]).astype(int)
    s = np.round(y * 0.3 + RNG.random((120, 4)), 1)  # ties on purpose
    want = np.mean([ref_auc(y[:, j], s[:, j]) for j in range(4)])
    assert mean_column_auc(y, s) == pytest.approx(want)
    assert matrix_metric("auc")(s, y) == pytest.approx(want)


def test_fathomnet_score_matches_the_reference():
    cats = [str(c) for c in range(1, 31)]
    n = 80
    truth_sets = [set(RNG.choice(cats, RNG.integers(1, 4), replace=False)) for _ in range(n)]
    guesses = [list(RNG.choice(cats, 20, replace=False)) for _ in range(n)]
    flags = RNG.integers(0, 2, n)
    osd = np.round(flags * 0.2 + RNG.random(n), 2)
    truth = pd.DataFrame(
        {
            "id": [f"i{i}" for i in range(n)],
            "categories": [" ".join(sorted(s)) for s in truth_sets],
            "osd": flags.astype(str),
        }
    )
    sub = pd.DataFrame(
        {"id": truth["id"], "categories": [" ".join(g) for g in guesses], "osd": osd.astype(str)}
    )
    result = score_frames(sub, truth)
    want = ((2 * ref_auc(flags, osd) - 1) + ref_map(guesses, truth_sets, 20)) / 2
    assert result["score"] == pytest.approx(want)


def test_matrix_metrics_agree_with_the_frame_metrics():
    probs = RNG.random((60, 5))
    y = RNG.integers(0, 5, 60)
    onehot = np.eye(5)[y]
    names = np.array(list("abcde"))
    assert matrix_metric("accuracy")(probs, onehot) == pytest.approx(
        ref_accuracy(list(y), list(probs.argmax(axis=1)))
    )
    assert matrix_metric("macro_f1")(probs, onehot) == pytest.approx(
        ref_macro_f1(list(names[y]), list(names[probs.argmax(axis=1)]))
    )
    lists = [list(names[np.argsort(-row, kind="stable")]) for row in probs]
    assert matrix_metric("map@3")(probs, onehot) == pytest.approx(
        ref_map(lists, [{names[i]} for i in y], 3)
    )
    # mean_f1 on matrices: the sets at the best threshold of its grid, top class always in
    sets = RNG.random((60, 5)) < 0.3
    got = matrix_metric("mean_f1")(probs, sets)
    best = max(
        ref_mean_f1(
            [list(names[r]) for r in sets],
            [list(names[(row >= t) | (np.arange(5) == row.argmax())]) for row in probs],
        )
        for t in np.linspace(0.05, 0.95, 19)
    )
    assert got == pytest.approx(best)


def test_registry_names_and_formats():
    assert metric_k("map@5") == 5 and metric_k("map@") == 0 and metric_k("accuracy") is None
    check_metric_format("map@12", "ranked", "x")
    with pytest.raises(FathomError, match="unknown metric 'map@0'"):
        check_metric_format("map@0", "ranked", "x")
    with pytest.raises(FathomError, match="'fathomnet' does not score a set submission"):
        check_metric_format("fathomnet", "set", "x")


def test_map_with_a_new_token_places_it_at_the_best_cut():
    from fathom.formats import ranked_lists
    from fathom.metrics import threshold_candidates

    probs = np.round(RNG.random((80, 6)), 2)
    y = RNG.integers(-1, 6, 80)  # -1: the new token's rows
    targets = np.zeros((80, 6))
    targets[np.flatnonzero(y >= 0), y[y >= 0]] = 1
    truth = [{"new" if c < 0 else str(c)} for c in y]
    want = max(
        ref_map(
            [["new" if c < 0 else str(c) for c in row] for row in ranked_lists(probs, probs, 3, t)],
            truth,
            3,
        )
        for t in threshold_candidates(probs, 11)
    )
    assert matrix_metric("map@3", new_token=True)(probs, targets) == pytest.approx(want)
    # without the token an all-zero row scores 0, as the plain MAP@K does
    assert matrix_metric("map@3")(probs, targets) == pytest.approx(
        ref_map([[str(c) for c in row] for row in ranked_lists(probs, probs, 3, None)], truth, 3)
    )
