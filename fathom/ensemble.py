"""Tuning on out-of-fold predictions: ensemble weights and label-set thresholds.

Pure functions over arrays. Every tuned number is reported twice over: fitted on all OOF rows
(what a submission uses) and fold-held-out (fitted on the other folds' rows, scored on the
held-out fold, stitched), which is the honest CV estimate: the rows that choose a weight or a
threshold never score it.

Weights are searched by hand (coordinate search on the simplex) because the objective, MAP@20,
is a step function of the weights: gradient-based optimisers (scipy's included) see a zero
gradient almost everywhere, and a coarse grid per coordinate is exact enough for 2-10 models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fathom.metrics import K, map_at_k_matrix

WEIGHT_STEP = 0.05


def weighted_mean(prob_list: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of several (N, C) probability matrices (weights are renormalised)."""
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(prob_list) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {len(prob_list)} non-negative weights with a positive sum, got {w}")
    w = w / w.sum()
    out = np.zeros_like(np.asarray(prob_list[0], dtype=np.float64))
    for wi, p in zip(w, prob_list, strict=True):
        out += wi * np.asarray(p, dtype=np.float64)
    return out


def row_ranks(scores: np.ndarray) -> np.ndarray:
    """Each row's scores replaced by their rank scaled to [0, 1] (1 = the row's best).

    Ranks are per image because MAP@20 ranks categories within an image; ties share the
    lower rank, which keeps the ordering of `rank_categories` (column order) stable.
    """
    scores = np.asarray(scores)
    order = np.argsort(scores, axis=1, kind="stable")
    ranks = np.empty_like(order, dtype=np.float64)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1], dtype=np.float64)[None, :], axis=1)
    return ranks / max(scores.shape[1] - 1, 1)


def rank_average(
    prob_list: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """Mean of per-image category ranks: immune to models whose probabilities differ in scale."""
    weights = np.ones(len(prob_list)) if weights is None else weights
    return weighted_mean([row_ranks(p) for p in prob_list], weights)


def fit_weights(
    prob_list: Sequence[np.ndarray],
    targets: np.ndarray,
    step: float = WEIGHT_STEP,
    passes: int = 3,
    k: int = K,
) -> np.ndarray:
    """Ensemble weights on the simplex that maximise MAP@k of the weighted mean.

    Coordinate search: for each model in turn, try every share of the total in `step`s
    (the other models keep their proportions), keep the best; repeat until nothing moves.
    Starts from equal weights and moves only on a strict improvement, so ties stay equal.
    """
    m = len(prob_list)
    w = np.full(m, 1.0 / m)
    if m == 1:
        return w
    best = map_at_k_matrix(weighted_mean(prob_list, w), targets, k)
    shares = np.round(np.arange(0.0, 1.0 + step / 2, step), 10)
    for _ in range(passes):
        moved = False
        for i in range(m):
            rest = np.delete(w, i)
            rest = rest / rest.sum() if rest.sum() > 0 else np.full(m - 1, 1.0 / (m - 1))
            for share in shares:
                cand = np.insert(rest * (1.0 - share), i, share)
                score = map_at_k_matrix(weighted_mean(prob_list, cand), targets, k)
                if score > best + 1e-12:
                    best, w, moved = score, cand, True
        if not moved:
            break
    return w


def fold_prior(targets: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The frequency prior as OOF predictions: each fold's rows get the category frequencies
    of the other folds' rows, so the prior can join an ensemble without seeing its own rows."""
    targets = np.asarray(targets, dtype=np.float64)
    out = np.zeros_like(targets)
    for f in np.unique(fold):
        held = fold == f
        out[held] = targets[~held].mean(axis=0)
    return out


def prior_logits(probs: np.ndarray) -> np.ndarray:
    """Logits of prior probabilities (clipped: a never-seen category has frequency 0)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fold_held_out(
    fit: Callable[[np.ndarray], object],
    apply: Callable[[object, np.ndarray], np.ndarray],
    fold: np.ndarray,
    n_rows: int,
) -> tuple[np.ndarray, list]:
    """Stitch predictions where each fold's rows come from a fit on the other folds' rows."""
    out = None
    fitted = []
    for f in np.unique(fold):
        held = fold == f
        params = fit(~held)
        fitted.append(params)
        pred = apply(params, held)
        if out is None:
            out = np.zeros((n_rows, *pred.shape[1:]), dtype=pred.dtype)
        out[held] = pred
    return out, fitted


@dataclass(frozen=True)
class EnsembleResult:
    """Every way of combining the models, each scored on OOF MAP@20."""

    method: str  # the chosen one: "mean", "rank" or "weighted"
    weights: list[float]  # fitted on all rows; what a submission uses
    map20: dict  # {"mean", "rank", "weighted" (fold-held-out), "weighted_in_sample"}
    fold_weights: list[list[float]]  # the weights each held-out fold got (their spread)
    held_out_probs: np.ndarray  # the chosen method's OOF scores, fold-held-out where tuned


def combine(method: str, prob_list: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Apply a combination chosen by `tune_ensemble` to new predictions (e.g. the eval set)."""
    if method == "rank":
        return rank_average(prob_list)
    if method == "mean":
        return weighted_mean(prob_list, np.ones(len(prob_list)))
    if method == "weighted":
        return weighted_mean(prob_list, weights)
    raise ValueError(f"unknown ensemble method {method!r}")


def tune_ensemble(
    prob_list: Sequence[np.ndarray], targets: np.ndarray, fold: np.ndarray, k: int = K
) -> EnsembleResult:
    """Compare the plain mean, rank averaging and fitted weights; choose by held-out MAP@k.

    All matrices are aligned by row with `targets` and `fold`.
    """
    fold = np.asarray(fold)
    mean = weighted_mean(prob_list, np.ones(len(prob_list)))
    rank = rank_average(prob_list)

    def fit(rows):
        return fit_weights([p[rows] for p in prob_list], targets[rows], k=k)

    def apply(w, rows):
        return weighted_mean([p[rows] for p in prob_list], w)

    held_out, fold_w = _fold_held_out(fit, apply, fold, len(targets))
    full_w = fit(np.ones(len(targets), dtype=bool))
    scores = {
        "mean": map_at_k_matrix(mean, targets, k),
        "rank": map_at_k_matrix(rank, targets, k),
        "weighted": map_at_k_matrix(held_out, targets, k),
        "weighted_in_sample": map_at_k_matrix(weighted_mean(prob_list, full_w), targets, k),
    }
    # ties go to the simpler method: mean before rank before fitted weights
    method = max(
        ["mean", "rank", "weighted"],
        key=lambda name: (scores[name], -["mean", "rank", "weighted"].index(name)),
    )
    chosen = {"mean": mean, "rank": rank, "weighted": held_out}[method]
    return EnsembleResult(
        method=method,
        weights=[float(x) for x in full_w],
        map20={name: float(v) for name, v in scores.items()},
        fold_weights=[[float(x) for x in w] for w in fold_w],
        held_out_probs=chosen,
    )


# --- label sets: thresholds that maximise the per-image F1 of the predicted sets


def predict_sets(
    probs: np.ndarray, thresholds: np.ndarray | float, at_least_one: bool = True
) -> np.ndarray:
    """Boolean (N, C): a category is predicted when its probability reaches its threshold.

    With `at_least_one`, an image with nothing above threshold gets its top category: every
    image in this competition holds at least one organism.
    """
    probs = np.asarray(probs)
    pred = probs >= np.asarray(thresholds)
    if at_least_one:
        empty = ~pred.any(axis=1)
        pred[np.flatnonzero(empty), probs[empty].argmax(axis=1)] = True
    return pred


def sample_f1(pred: np.ndarray, targets: np.ndarray) -> float:
    """Mean over images of 2|P & T| / (|P| + |T|) (sklearn's average='samples'; 0/0 counts 0)."""
    t = np.asarray(targets) > 0
    tp = (pred & t).sum(axis=1)
    denom = pred.sum(axis=1) + t.sum(axis=1)
    return float(np.mean(np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)))


def threshold_grid(n: int = 60) -> np.ndarray:
    """Candidate thresholds, dense near 0 where sigmoid outputs of rare classes live."""
    return np.unique(
        np.concatenate([np.geomspace(1e-3, 0.1, n // 3), np.linspace(0.1, 0.95, n - n // 3)])
    )


def fit_global_threshold(
    probs: np.ndarray, targets: np.ndarray, grid: np.ndarray | None = None
) -> float:
    """The one threshold for every category that maximises sample F1."""
    grid = threshold_grid() if grid is None else grid
    scores = [sample_f1(predict_sets(probs, t), targets) for t in grid]
    return float(grid[int(np.argmax(scores))])


def fit_category_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    start: float,
    min_positives: int = 3,
    passes: int = 2,
    grid: np.ndarray | None = None,
) -> np.ndarray:
    """Per-category thresholds by coordinate ascent on sample F1, from the global one.

    A category with fewer than `min_positives` positive rows keeps `start`: a threshold fitted
    to one or two images is noise. Each move changes one column, so the F1 of every image is
    updated from its running counts instead of being recomputed (fast enough for 290 x 60).
    """
    grid = threshold_grid() if grid is None else grid
    probs = np.asarray(probs, dtype=np.float64)
    t = np.asarray(targets) > 0
    thr = np.full(probs.shape[1], float(start))
    n_true = t.sum(axis=1)
    top = probs.argmax(axis=1)
    top_hit = t[np.arange(len(t)), top]
    positives = t.sum(axis=0)
    for _ in range(passes):
        raw = probs >= thr  # before the at-least-one rule
        tp_all = (raw & t).sum(axis=1)
        np_all = raw.sum(axis=1)
        for c in np.flatnonzero(positives >= min_positives):
            tp_wo = tp_all - (raw[:, c] & t[:, c])
            np_wo = np_all - raw[:, c]
            cand = probs[:, c][None, :] >= grid[:, None]  # (G, N)
            tp = tp_wo[None, :] + (cand & t[:, c][None, :])
            npred = np_wo[None, :] + cand
            f1 = np.where(
                npred > 0, 2.0 * tp / np.maximum(npred + n_true, 1), 2.0 * top_hit / (1 + n_true)
            )
            score = f1.mean(axis=1)
            best = int(np.argmax(score))
            # keep the current threshold unless a candidate is strictly better
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


@dataclass(frozen=True)
class ThresholdResult:
    global_threshold: float
    category_thresholds: list[float]
    f1: dict  # {"top1", "global", "per_category"} fold-held-out, plus "..._in_sample"


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, fold: np.ndarray) -> ThresholdResult:
    """Global and per-category thresholds, with fold-held-out sample F1 for each."""
    fold = np.asarray(fold)
    n = len(targets)

    def fit_global(rows):
        return fit_global_threshold(probs[rows], targets[rows])

    def fit_per_cat(rows):
        return fit_category_thresholds(probs[rows], targets[rows], fit_global(rows))

    def apply(thr, rows):
        return predict_sets(probs[rows], thr)

    held_g, _ = _fold_held_out(fit_global, apply, fold, n)
    held_c, _ = _fold_held_out(fit_per_cat, apply, fold, n)
    everything = np.ones(n, dtype=bool)
    g = fit_global(everything)
    c = fit_category_thresholds(probs, targets, g)
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
