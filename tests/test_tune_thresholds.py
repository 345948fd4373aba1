"""Thresholds found with less work (issue 19): per-category ones scored once per distinct set
of predicted images, the global one from per-image histograms over the grid; the same
thresholds and F1s as scoring every grid value's full matrix, ties and all."""

import numpy as np
import pytest

from fathom.ensemble import fold_held_out
from fathom.metrics import predict_sets, sample_f1
from fathom.tune import (
    ThresholdResult,
    fit_category_thresholds,
    global_threshold_f1,
    threshold_grid,
    tune_thresholds,
)


def reference_category_thresholds(probs, targets, start, min_positives=3, passes=2, grid=None):
    """The coordinate ascent as it was: a (G, N) matrix of every image's F1 per category."""
    grid = threshold_grid() if grid is None else grid
    probs = np.asarray(probs, dtype=np.float64)
    t = np.asarray(targets) > 0
    thr = np.full(probs.shape[1], float(start))
    n_true = t.sum(axis=1)
    top = probs.argmax(axis=1)
    top_hit = t[np.arange(len(t)), top]
    positives = t.sum(axis=0)
    for _ in range(passes):
        raw = probs >= thr
        tp_all = (raw & t).sum(axis=1)
        np_all = raw.sum(axis=1)
        for c in np.flatnonzero(positives >= min_positives):
            tp_wo = tp_all - (raw[:, c] & t[:, c])
            np_wo = np_all - raw[:, c]
            cand = probs[:, c][None, :] >= grid[:, None]
            tp = tp_wo[None, :] + (cand & t[:, c][None, :])
            npred = np_wo[None, :] + cand
            f1 = np.where(
                npred > 0, 2.0 * tp / np.maximum(npred + n_true, 1), 2.0 * top_hit / (1 + n_true)
            )
            score = f1.mean(axis=1)
            best = int(np.argmax(score))
            current = np.where(
                np_all > 0,
                2.0 * tp_all / np.maximum(np_all + n_true, 1),
                2.0 * top_hit / (1 + n_true),
            ).mean()
            if score[best] > current + 1e-12:
                thr[c] = grid[best]
                raw[:, c] = cand[best]
                tp_all, np_all = tp[best], npred[best]
    return thr


def probs_and_targets(rng, n, c, ties):
    """Sigmoid-like scores (many tiny, as rare categories get), 0-4 labels a row, some
    categories rare; with `ties`, scores sit on the grid itself or on a few shared values."""
    probs = rng.random((n, c)) ** rng.uniform(1, 6, c)
    targets = rng.random((n, c)) < rng.uniform(0.0, 0.3, c)
    probs[targets] = np.clip(probs[targets] + rng.uniform(0, 0.5, targets.sum()), 0, 1)
    if ties == "grid":
        grid = threshold_grid()
        probs = grid[np.minimum(np.searchsorted(grid, probs), len(grid) - 1)]
    elif ties == "coarse":
        probs = np.round(probs * 8) / 8
    return probs, targets.astype(np.float64)


@pytest.mark.parametrize("ties", ["none", "grid", "coarse"])
@pytest.mark.parametrize("seed", range(4))
def test_category_thresholds_are_exactly_the_full_grid_search_s(seed, ties):
    rng = np.random.default_rng(seed)
    probs, y = probs_and_targets(rng, int(rng.integers(5, 400)), int(rng.integers(1, 40)), ties)
    for start in (0.3, 0.05, 0.7):
        np.testing.assert_array_equal(
            fit_category_thresholds(probs, y, start),
            reference_category_thresholds(probs, y, start),
        )
    grid = rng.permutation(np.linspace(0.0, 1.0, 17))  # an unsorted grid of one's own
    np.testing.assert_array_equal(
        fit_category_thresholds(probs, y, 0.5, min_positives=1, passes=3, grid=grid),
        reference_category_thresholds(probs, y, 0.5, min_positives=1, passes=3, grid=grid),
    )


def test_category_thresholds_with_nan_scores_match_the_full_grid_search():
    rng = np.random.default_rng(11)
    probs, y = probs_and_targets(rng, 200, 12, "coarse")
    probs[rng.random(probs.shape) < 0.05] = np.nan
    np.testing.assert_array_equal(
        fit_category_thresholds(probs, y, 0.4), reference_category_thresholds(probs, y, 0.4)
    )


def reference_tune_thresholds(probs, targets, fold):
    """`tune_thresholds` as it was: each fold's global threshold fitted twice, on the grid
    one matrix at a time."""
    n = len(targets)

    def fit_global(rows):
        grid = threshold_grid()
        scores = [sample_f1(predict_sets(probs[rows], t), targets[rows]) for t in grid]
        return float(grid[int(np.argmax(scores))])

    def fit_per_cat(rows):
        return reference_category_thresholds(probs[rows], targets[rows], fit_global(rows))

    def apply(thr, rows):
        return predict_sets(probs[rows], thr)

    held_g, _ = fold_held_out(fit_global, apply, fold, n)
    held_c, _ = fold_held_out(fit_per_cat, apply, fold, n)
    g = fit_global(np.ones(n, dtype=bool))
    c = reference_category_thresholds(probs, targets, g)
    return ThresholdResult(
        global_threshold=g,
        category_thresholds=[float(x) for x in c],
        f1={
            "top1": sample_f1(predict_sets(probs, np.inf), targets),
            "global": sample_f1(held_g, targets),
            "per_category": sample_f1(held_c, targets),
            "global_in_sample": sample_f1(predict_sets(probs, g), targets),
            "per_category_in_sample": sample_f1(predict_sets(probs, c), targets),
        },
    )


@pytest.mark.parametrize("ties", ["none", "grid", "coarse"])
def test_tune_thresholds_is_exactly_the_reference(ties):
    """The held-out and in-sample fits through `tune_thresholds`, on data where the
    per-category thresholds do move off the global one."""
    rng = np.random.default_rng(12)
    probs, y = probs_and_targets(rng, 600, 30, ties)
    fold = np.arange(600) % 5
    res = tune_thresholds(probs, y, fold)
    assert len(set(res.category_thresholds)) > 3
    assert res == reference_tune_thresholds(probs, y, fold)


@pytest.mark.parametrize("ties", ["none", "grid", "coarse"])
@pytest.mark.parametrize("seed", range(4))
def test_global_threshold_f1_is_sample_f1_at_each_threshold_to_the_bit(seed, ties):
    rng = np.random.default_rng(50 + seed)
    probs, y = probs_and_targets(rng, int(rng.integers(1, 300)), int(rng.integers(1, 40)), ties)
    probs[rng.random(probs.shape) < 0.01] = np.inf  # reaches every threshold
    y[0] = 0  # an image with no label
    for grid in (threshold_grid(), np.array([0.5]), np.linspace(0, 1, 9), np.array([])):
        expected = [sample_f1(predict_sets(probs, g), y) for g in grid]
        np.testing.assert_array_equal(global_threshold_f1(probs, y, grid), expected)
        f32 = probs.astype(np.float32)
        expected = [sample_f1(predict_sets(f32, g), y) for g in grid]
        np.testing.assert_array_equal(global_threshold_f1(f32, y, grid), expected)


def test_global_threshold_f1_takes_the_plain_way_for_nan_or_an_unsorted_grid():
    rng = np.random.default_rng(60)
    probs, y = probs_and_targets(rng, 100, 10, "coarse")
    unsorted = np.array([0.5, 0.1, 0.9, 0.3])
    expected = [sample_f1(predict_sets(probs, g), y) for g in unsorted]
    np.testing.assert_array_equal(global_threshold_f1(probs, y, unsorted), expected)
    probs[3, 4] = np.nan
    grid = threshold_grid()
    expected = [sample_f1(predict_sets(probs, g), y) for g in grid]
    np.testing.assert_array_equal(global_threshold_f1(probs, y, grid), expected)
