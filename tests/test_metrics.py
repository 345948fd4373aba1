import numpy as np
import pytest

from fathom.metrics import (
    ap_at_k_matrix,
    average_precision_at_k,
    competition_score,
    map_at_k,
    map_at_k_matrix,
    sauc,
)


def test_ap_hand_worked_hits_at_ranks_1_and_3():
    # hits at ranks 1 and 3: (1/1 + 2/3) / min(2, 20)
    assert average_precision_at_k(["1", "5", "2"], {"1", "2"}) == pytest.approx((1 + 2 / 3) / 2)


def test_duplicate_takes_a_rank_but_never_scores():
    # "1" again at rank 2 is not a hit, but pushes "2" to rank 3
    assert average_precision_at_k(["1", "1", "2"], {"1", "2"}) == pytest.approx((1 + 2 / 3) / 2)
    # a duplicate of a true label after it was counted adds nothing
    assert average_precision_at_k(["3", "3"], {"3"}) == pytest.approx(1.0)


def test_fewer_than_20_predictions_and_missed_labels():
    # one guess, right, out of three true labels: 1/1 divided by min(3, 20)
    assert average_precision_at_k(["7"], {"7", "8", "9"}) == pytest.approx(1 / 3)


def test_more_true_labels_than_k_divides_by_k():
    truth = {str(i) for i in range(1, 26)}  # 25 true labels
    pred = [str(i) for i in range(1, 21)]  # 20 guesses, all right
    assert average_precision_at_k(pred, truth) == pytest.approx(1.0)
    # only the first 20 guesses count: a hit at rank 21 is ignored
    assert average_precision_at_k(["99"] * 20 + ["1"], {"1"}) == 0.0


def test_no_correct_prediction_and_string_comparison():
    assert average_precision_at_k(["4", "5"], {"1"}) == 0.0
    assert average_precision_at_k(["1.0"], {"1"}) == 0.0  # the scorer compares strings
    assert average_precision_at_k([], {"1"}) == 0.0
    assert average_precision_at_k(["1"], set()) == 0.0


def test_map_is_the_mean_of_ap():
    preds = [["1", "5", "2"], ["7"], ["4"]]
    truths = [{"1", "2"}, {"7", "8", "9"}, {"1"}]
    expected = ((1 + 2 / 3) / 2 + 1 / 3 + 0.0) / 3
    assert map_at_k(preds, truths) == pytest.approx(expected)
    with pytest.raises(ValueError):
        map_at_k(preds, truths[:2])


def test_matrix_map_agrees_with_list_map():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30))
    targets = (rng.random((50, 30)) < 0.1).astype(int)
    targets[0] = 0
    targets[0, 3] = 1
    preds = [[str(j) for j in np.argsort(-row, kind="stable")[:20]] for row in scores]
    truths = [{str(j) for j in np.flatnonzero(row)} for row in targets]
    assert map_at_k_matrix(scores, targets) == pytest.approx(map_at_k(preds, truths))
    assert ap_at_k_matrix(scores, targets).shape == (50,)


def test_sauc_and_score():
    assert sauc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert sauc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(-1.0)
    assert sauc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    assert competition_score(0.4, 0.2) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        sauc([1, 1], [0.2, 0.3])


def _full_sort_ap(scores, targets, k=20):
    """AP@k by a stable sort of every column: the reference the fast paths must equal."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(targets, top, axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_true = targets.sum(axis=1)
    denom = np.maximum(np.minimum(n_true, k), 1).astype(np.float64)
    return np.where(n_true > 0, (precision * hits).sum(axis=1) / denom, 0.0)


@pytest.mark.parametrize("density", [0.005, 0.03, 0.3])  # 1-3 labels a row, and > 8 (top-k)
def test_fast_map_equals_the_full_sort_exactly_with_ties(density):
    rng = np.random.default_rng(int(density * 1000))
    for trial in range(60):
        n, c, k = int(rng.integers(1, 80)), int(rng.integers(2, 300)), int(rng.integers(1, 30))
        if trial % 3 == 0:  # heavy ties: a few distinct values, zeros of both signs
            scores = rng.integers(0, 4, (n, c)) * 0.25 * rng.choice([1.0, -1.0])
        elif trial % 3 == 1:  # ties at the k-th place: a constant block in every row
            scores = rng.random((n, c))
            scores[:, c // 3 :] = 0.01
        else:
            scores = rng.random((n, c)).astype(np.float32)
        targets = rng.random((n, c)) < density
        targets[0, : min(c, 3)] = True
        np.testing.assert_array_equal(
            ap_at_k_matrix(scores, targets, k), _full_sort_ap(scores, targets, k)
        )
        assert map_at_k_matrix(scores, targets, k) == float(
            _full_sort_ap(scores, targets, k).mean()
        )


def test_top_k_columns_is_the_stable_sort_cut_at_k():
    from fathom.metrics import top_k_columns

    rng = np.random.default_rng(7)
    for _ in range(100):
        n, c, k = int(rng.integers(1, 40)), int(rng.integers(1, 120)), int(rng.integers(0, 30))
        scores = rng.integers(0, int(rng.integers(1, 6)), (n, c)).astype(float)
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(top_k_columns(scores, k), expected)
    with_nan = np.array([[0.5, np.nan, 0.7, 0.1, 0.2, 0.3]])
    np.testing.assert_array_equal(top_k_columns(with_nan, 2), [[2, 0]])
    targets = np.array([[0, 1, 0, 0, 0, 1]])
    assert ap_at_k_matrix(with_nan, targets, 3) == pytest.approx(
        _full_sort_ap(with_nan, targets, 3)
    )
