"""The weight search's MAP@20 of each share without materialising the blends (issue 19): the
same floats, to the bit, as the blend-by-blend search it replaced, ties and all."""

import numpy as np
import pytest

from fathom import ensemble
from fathom import metrics as metrics_lib
from fathom.ensemble import fit_weights, tune_ensemble, weighted_mean
from fathom.metrics import TrueLabels, blend_shares, map_at_k_matrix, map_at_k_shares

SHARES = np.round(np.arange(0.0, 1.0 + 0.025, 0.05), 10)


def reference_fit_weights(prob_list, targets, step=0.05, passes=3, metric=map_at_k_matrix):
    """The search as it was: every share's blend materialised and scored by `metric`."""
    m = len(prob_list)
    w = np.full(m, 1.0 / m)
    if m == 1:
        return w
    prob_list = [np.asarray(p, dtype=np.float64) for p in prob_list]
    best = metric(weighted_mean(prob_list, w), targets)
    shares = np.round(np.arange(0.0, 1.0 + step / 2, step), 10)
    for _ in range(passes):
        moved = False
        for i in range(m):
            rest = np.delete(w, i)
            rest = rest / rest.sum() if rest.sum() > 0 else np.full(m - 1, 1.0 / (m - 1))
            others = weighted_mean([p for j, p in enumerate(prob_list) if j != i], rest)
            for share in shares:
                cand = np.insert(rest * (1.0 - share), i, share)
                blend = np.multiply(others, 1.0 - share) + np.multiply(prob_list[i], share)
                score = metric(blend, targets)
                if score > best + 1e-12:
                    best, w, moved = score, cand, True
        if not moved:
            break
    return w


def members(rng, n, c, n_models=3):
    """Models near a shared signal, plus a frequency prior (one row repeated per fold: many
    columns exactly equal, zeros among them) and the targets (1-8 labels a row, some none)."""
    signal = rng.random((n, c)) ** 2
    n_true = rng.integers(0, 9, n)
    targets = np.zeros((n, c), dtype=bool)
    for r, t in enumerate(n_true):
        targets[r, rng.choice(c, size=min(t, c), replace=False)] = True
    signal[targets] += rng.random(targets.sum())
    models = [np.clip(signal + rng.normal(0, 0.3, (n, c)), 0, None) / 2 for _ in range(n_models)]
    fold = np.arange(n) % 3
    prior = np.zeros((n, c))
    for f in range(3):
        freq = np.round(targets[fold != f].mean(axis=0), 2)  # few distinct values: ties
        prior[fold == f] = freq
    return [*models, prior], targets.astype(np.float64), fold


def near_ties(rng, n, c):
    """`others` and `member` of a few values each, every one moved by an ulp or not at all:
    columns one ulp below a label in both can still tie with it once blended."""

    def jittered():
        base = rng.integers(1, 4, (n, c)) / 4.0
        step = rng.integers(-1, 2, (n, c))
        out = np.where(step > 0, np.nextafter(base, 2.0), base)
        return np.where(step < 0, np.nextafter(base, -1.0), out)

    return jittered(), jittered()


@pytest.mark.parametrize("seed", range(6))
def test_map_of_each_share_equals_the_materialised_blend_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 200)), int(rng.integers(2, 60))
    probs, targets, _ = members(rng, n, c)
    pairs = [
        (weighted_mean(probs[1:], [0.2, 0.3, 0.5]), probs[0]),  # a model against a mix
        (weighted_mean(probs[:3], [1, 1, 1]), probs[3]),  # the prior against the models
        (probs[3], probs[0]),
        near_ties(rng, n, c),
        (-probs[0], probs[1] * 1e-300),  # negative scores; subnormal products
    ]
    shares = np.concatenate([SHARES, rng.random(10)])
    labels = TrueLabels(targets)
    for k in (1, 3, 20):
        for others, member in pairs:
            expected = [map_at_k_matrix(blend_shares(others, member, s), labels, k) for s in shares]
            assert map_at_k_shares(others, member, labels, shares, k) == expected
            assert map_at_k_shares(others, member, targets, shares, k) == expected


def test_blend_shares_is_the_search_s_blend():
    rng = np.random.default_rng(9)
    others, member = rng.random((50, 30)), rng.random((50, 30))
    for s in SHARES:
        blend, part = np.empty_like(others), np.empty_like(others)
        np.multiply(others, 1.0 - s, out=blend)
        np.multiply(member, s, out=part)
        blend += part
        np.testing.assert_array_equal(blend_shares(others, member, s), blend)


def test_shares_fall_back_to_the_full_blend_where_ranks_cannot_be_counted():
    rng = np.random.default_rng(10)
    others, member = rng.random((40, 30)), rng.random((40, 30))
    many = rng.random((40, 30)) < 0.5  # > 8 labels a row: the top-k path
    with_nan = others.copy()
    with_nan[3, 4] = np.nan
    few = rng.random((40, 30)) < 0.05
    for o, t in [(others, many), (with_nan, few), (others * np.inf, few)]:
        with np.errstate(invalid="ignore"):
            expected = [map_at_k_matrix(blend_shares(o, member, s), t) for s in SHARES]
            got = map_at_k_shares(o, member, t, SHARES)
        np.testing.assert_array_equal(got, expected)  # NaN == NaN here
    empty = np.zeros((0, 5))
    assert np.isnan(map_at_k_shares(empty, empty, empty, [0.5])).all()  # as map_at_k_matrix


@pytest.mark.parametrize("seed", range(4))
def test_fit_weights_finds_exactly_the_reference_search_s_weights(seed):
    rng = np.random.default_rng(100 + seed)
    probs, targets, _ = members(rng, int(rng.integers(60, 300)), int(rng.integers(20, 80)))
    np.testing.assert_array_equal(
        fit_weights(probs, targets), reference_fit_weights(probs, targets)
    )
    pair = probs[::3]  # a model and the prior alone
    np.testing.assert_array_equal(fit_weights(pair, targets), reference_fit_weights(pair, targets))


def test_tune_ensemble_is_unchanged_against_the_reference_search(monkeypatch):
    rng = np.random.default_rng(7)
    probs, targets, fold = members(rng, 240, 40)
    averaged = [True, True, True, False]
    res = tune_ensemble(probs, targets, fold, averaged=averaged)
    monkeypatch.setattr(
        ensemble, "fit_weights", lambda p, t, metric: reference_fit_weights(p, t, metric=metric)
    )
    ref = tune_ensemble(probs, targets, fold, averaged=averaged)
    assert res.weights == ref.weights and res.fitted_weights == ref.fitted_weights
    assert res.fold_weights == ref.fold_weights and res.scores == ref.scores
    assert res.method == ref.method
    np.testing.assert_array_equal(res.held_out_probs, ref.held_out_probs)


def test_the_search_ranks_no_materialised_blend(monkeypatch):
    """The speed-up itself: only the starting mean is ranked in full, not each share tried
    (1,886 full rankings of 5,950 x 290 were 11 s of `fathom tune` at FathomNet's size)."""
    calls = []
    full = metrics_lib.true_label_ranks
    monkeypatch.setattr(metrics_lib, "true_label_ranks", lambda *a: calls.append(1) or full(*a))
    rng = np.random.default_rng(3)
    probs, targets, _ = members(rng, 100, 30)
    fit_weights(probs, targets)
    assert len(calls) == 1


def test_shares_of_images_without_labels_score_zero_as_the_full_blend_does():
    rng = np.random.default_rng(11)
    others, member = rng.random((6, 5)), rng.random((6, 5))
    none = np.zeros((6, 5))
    assert map_at_k_shares(others, member, none, SHARES) == [0.0] * len(SHARES)
    assert [map_at_k_matrix(blend_shares(others, member, s), none) for s in SHARES] == [0.0] * len(
        SHARES
    )


def test_another_metric_still_scores_each_materialised_blend():
    from fathom.metrics import accuracy_matrix

    rng = np.random.default_rng(12)
    probs, _, _ = members(rng, 150, 12)
    truth = np.eye(12)[(probs[0] + probs[1] * 2).argmax(axis=1)]
    got = fit_weights(probs, truth, metric=accuracy_matrix)
    np.testing.assert_array_equal(got, reference_fit_weights(probs, truth, metric=accuracy_matrix))
    assert got[1] > got[2]  # the search did move
