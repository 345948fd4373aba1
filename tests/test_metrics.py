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
