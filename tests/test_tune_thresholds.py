"""Per-category thresholds scored once per distinct set of predicted images (issue 19): the
same thresholds as scoring every grid value's (G, N) matrix, ties and all."""

import numpy as np
import pytest

from fathom.tune import fit_category_thresholds, threshold_grid, tune_thresholds


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


def test_tune_thresholds_moves_categories_and_matches_the_reference(monkeypatch):
    """The held-out and in-sample fits through `tune_thresholds`, on data where the
    per-category thresholds do move off the global one."""
    from fathom import tune

    rng = np.random.default_rng(12)
    probs, y = probs_and_targets(rng, 600, 30, "none")
    fold = np.arange(600) % 5
    res = tune_thresholds(probs, y, fold)
    assert len(set(res.category_thresholds)) > 3
    monkeypatch.setattr(tune, "fit_category_thresholds", reference_category_thresholds)
    assert tune_thresholds(probs, y, fold) == res
