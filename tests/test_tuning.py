import numpy as np
import pytest

from fathom.ensemble import (
    combine,
    fit_weights,
    rank_average,
    row_ranks,
    tune_ensemble,
    weighted_mean,
)
from fathom.metrics import map_at_k_matrix
from fathom.tune import (
    fit_category_thresholds,
    fit_global_threshold,
    predict_sets,
    sample_f1,
    tune_thresholds,
)


def _targets_from(score, n_true=2):
    """A 0/1 matrix holding each row's n_true best columns of `score`."""
    top = np.argsort(-score, axis=1)[:, :n_true]
    y = np.zeros_like(score)
    np.put_along_axis(y, top, 1.0, axis=1)
    return y


def test_equal_weights_are_found_when_truth_is_the_sum_of_two_models():
    rng = np.random.default_rng(0)
    a, b = rng.random((300, 30)), rng.random((300, 30))
    y = _targets_from(a + b)
    w = fit_weights([a, b], y)
    assert w == pytest.approx([0.5, 0.5], abs=0.051)
    assert map_at_k_matrix(weighted_mean([a, b], w), y) == pytest.approx(1.0)
    assert map_at_k_matrix(a, y) < 0.9  # neither model alone is enough


def test_known_weights_three_to_one():
    rng = np.random.default_rng(1)
    a, b = rng.random((400, 25)), rng.random((400, 25))
    y = _targets_from(0.75 * a + 0.25 * b, n_true=3)
    w = fit_weights([a, b], y)
    assert w[0] == pytest.approx(0.75, abs=0.051)


def test_a_noise_model_gets_no_weight_and_the_tuned_cv_is_held_out():
    rng = np.random.default_rng(2)
    signal = rng.random((500, 20))
    y = _targets_from(signal)
    good = signal + 0.3 * rng.random((500, 20))
    noise = rng.random((500, 20))
    fold = np.arange(500) % 5
    res = tune_ensemble([good, noise], y, fold)
    assert res.weights[0] > 0.9
    assert res.method == "weighted"
    assert res.scores["weighted"] > res.scores["mean"]
    assert len(res.fold_weights) == 5
    # held-out CV is never above the in-sample fit of the same search
    assert res.scores["weighted"] <= res.scores["weighted_in_sample"] + 1e-12
    # the held-out predictions of each fold come from weights fitted without it
    f0 = fold == 0
    expected = weighted_mean([good[f0], noise[f0]], res.fold_weights[0])
    assert np.allclose(res.held_out_probs[f0], expected)


def test_rank_average_ignores_a_models_scale():
    rng = np.random.default_rng(3)
    a = rng.random((50, 10))
    ranks = row_ranks(a)
    assert np.array_equal(np.argsort(ranks, axis=1), np.argsort(a, axis=1))
    assert ranks.min() == 0 and ranks.max() == 1
    # squashing one model's probabilities changes the mean but not the rank average
    b = rng.random((50, 10))
    assert np.allclose(rank_average([a, b]), rank_average([a**5 * 0.01, b]))
    assert np.allclose(combine("rank", [a, b], [0.5, 0.5]), rank_average([a, b]))
    assert np.allclose(combine("rank", [a, b], [1, 0]), row_ranks(a))  # the recorded weights
    with pytest.raises(ValueError):
        combine("median", [a, b], [1, 1])


def test_sample_f1_and_sets():
    probs = np.array([[0.9, 0.2, 0.6], [0.1, 0.3, 0.2]])
    y = np.array([[1, 0, 0], [0, 0, 1]])
    pred = predict_sets(probs, 0.5)
    assert pred.tolist() == [[True, False, True], [False, True, False]]  # row 2: top-1 fallback
    assert sample_f1(pred, y) == pytest.approx((2 / 3 + 0) / 2)
    assert predict_sets(probs, 0.5, at_least_one=False)[1].sum() == 0


def test_thresholds_recover_a_known_cut():
    rng = np.random.default_rng(4)
    probs = rng.random((400, 6))
    y = (probs > 0.7).astype(float)
    t = fit_global_threshold(probs, y)
    assert 0.65 <= t <= 0.75
    # category 0 is only positive above 0.3: its own threshold should move there
    y[:, 0] = (probs[:, 0] > 0.3).astype(float)
    per = fit_category_thresholds(probs, y, start=t)
    assert 0.25 <= per[0] <= 0.35
    assert sample_f1(predict_sets(probs, per), y) > sample_f1(predict_sets(probs, t), y)


def test_tune_thresholds_reports_held_out_and_in_sample_f1():
    rng = np.random.default_rng(5)
    probs = rng.random((300, 8))
    y = (probs + 0.2 * rng.random((300, 8)) > 0.8).astype(float)
    res = tune_thresholds(probs, y, np.arange(300) % 3)
    assert set(res.f1) == {
        "top1",
        "global",
        "per_category",
        "global_in_sample",
        "per_category_in_sample",
    }
    assert len(res.category_thresholds) == 8
    assert res.f1["global"] > res.f1["top1"]
    assert res.f1["per_category_in_sample"] >= res.f1["global_in_sample"] - 1e-12


def test_fold_prior_never_sees_its_own_rows():
    from fathom.ensemble import fold_prior

    y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    fold = np.array([0, 0, 1, 1])
    p = fold_prior(y, fold)
    assert p[:2].tolist() == [[0.0, 1.0], [0.0, 1.0]]  # fold 0 sees only fold 1's labels
    assert p[2:].tolist() == [[1.0, 0.0], [1.0, 0.0]]


def test_rank_average_keeps_tied_categories_in_column_order():
    from fathom.submission import rank_categories

    probs = np.array([[0.2, 0.5, 0.5, 0.1, 0.5]])
    ranked = rank_categories(rank_average([probs, probs]), [1, 2, 3, 4, 5], k=5)
    assert ranked == rank_categories(probs, [1, 2, 3, 4, 5], k=5) == [[2, 3, 5, 1, 4]]
    assert row_ranks(probs)[0, 1] == row_ranks(probs)[0, 2] == row_ranks(probs)[0, 4]


def test_mean_and_rank_record_the_equal_weights_they_use(monkeypatch):
    """When the plain mean wins, the weights a submission uses are equal: the fitted ones are
    kept apart (as `fitted_weights`), never shown as if they were used."""
    import fathom.ensemble as ensemble

    monkeypatch.setattr(ensemble, "fit_weights", lambda probs, targets, **kw: np.array([0.9, 0.1]))
    rng = np.random.default_rng(0)
    p = rng.random((40, 6))
    res = tune_ensemble([p, p.copy()], _targets_from(p), np.arange(40) % 4)
    assert res.method == "mean"  # identical members: every method ties, the simplest wins
    assert res.weights == [0.5, 0.5] and res.fitted_weights == [0.9, 0.1]


def test_the_plain_mean_and_rank_average_leave_out_a_baseline_member(monkeypatch):
    """The frequency prior joins for the weight search only: the plain mean of two models is
    their mean, not a third of each plus a third of the prior, and a submission applies the
    recorded weights, so it combines the eval predictions exactly as the OOF was scored."""
    rng = np.random.default_rng(7)
    signal = rng.random((300, 12))
    y = _targets_from(signal)
    a = signal + 0.4 * rng.random((300, 12))
    b = signal + 0.4 * rng.random((300, 12))
    prior = np.tile(y.mean(axis=0), (300, 1))
    fold = np.arange(300) % 3
    import fathom.ensemble as ensemble

    # weights that lean on the prior alone lose, so a plain combination is chosen
    monkeypatch.setattr(ensemble, "fit_weights", lambda probs, targets, **kw: np.eye(3)[2])
    res = tune_ensemble([a, b, prior], y, fold, averaged=[True, True, False])
    assert res.scores["mean"] == pytest.approx(map_at_k_matrix((a + b) / 2, y))
    assert res.scores["rank"] == pytest.approx(map_at_k_matrix(rank_average([a, b]), y))
    assert res.method in ("mean", "rank") and res.weights == [0.5, 0.5, 0.0]
    assert np.allclose(combine(res.method, [a, b, prior], res.weights), res.held_out_probs)
    with pytest.raises(ValueError, match="averaged"):
        tune_ensemble([a, b], y, fold, averaged=[False, False])
