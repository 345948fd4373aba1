"""Ensembles of several models' predictions: the plain mean, per-image rank averaging and
weights fitted on the OOF, compared fold-held-out.

Pure functions over arrays. A fitted number is reported twice over: fitted on all OOF rows
(what a submission uses) and fold-held-out (fitted on the other folds' rows, scored on the
held-out fold, stitched), which is the honest CV estimate: the rows that choose a weight never
score it. The objective is MAP@20 for multi-label competitions and accuracy for single-label
ones (`metric`).

Weights are searched by hand (coordinate search on the simplex) because the objective, MAP@20,
is a step function of the weights: gradient-based optimisers (scipy's included) see a zero
gradient almost everywhere, and a coarse grid per coordinate is exact enough for 2-10 models.
For MAP@20 the shares of a coordinate are scored without materialising each blend
(`fathom.metrics.map_at_k_shares`, the same floats), which made the search ~5x faster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from fathom.metrics import TrueLabels, map_at_k_matrix, map_at_k_shares

Metric = Callable[[np.ndarray, np.ndarray], float]

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

    Ranks are per image because MAP@20 ranks categories within an image. Tied scores share
    one (average) rank, so the ranking that follows (`rank_categories`, a stable sort) keeps
    tied categories in column order, as it does for the probabilities themselves.
    """
    scores = np.asarray(scores, dtype=np.float64)
    ranks = rankdata(scores, method="average", axis=1) - 1.0
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
    metric: Metric = map_at_k_matrix,
) -> np.ndarray:
    """Ensemble weights on the simplex that maximise `metric` (MAP@20) of the weighted mean.

    Coordinate search: for each model in turn, try every share of the total in `step`s
    (the other models keep their proportions), keep the best; repeat until nothing moves.
    Starts from equal weights and moves only on a strict improvement, so ties stay equal.
    """
    m = len(prob_list)
    w = np.full(m, 1.0 / m)
    if m == 1:
        return w
    # float64 once, not in each of the hundreds of `weighted_mean` calls below (same values)
    prob_list = [np.asarray(p, dtype=np.float64) for p in prob_list]
    # MAP@20 of every share's blend without materialising it (the same floats; issue 19)
    fast = metric is map_at_k_matrix
    if fast:  # the true labels found once for the hundreds of calls below
        targets = TrueLabels(targets)
    best = metric(weighted_mean(prob_list, w), targets)
    shares = np.round(np.arange(0.0, 1.0 + step / 2, step), 10)
    if not fast:
        blend, part = np.empty_like(prob_list[0]), np.empty_like(prob_list[0])

    def score_share(others, member, share):  # any other metric: each blend materialised
        # (1 - share) * others + share * member into buffers made once: a fresh matrix per
        # share tried is page-faulted in anew each time (`blend_shares`' values, to the bit)
        np.multiply(others, 1.0 - share, out=blend)
        np.multiply(member, share, out=part)
        np.add(blend, part, out=blend)
        return metric(blend, targets)

    for _ in range(passes):
        moved = False
        for i in range(m):
            rest = np.delete(w, i)
            rest = rest / rest.sum() if rest.sum() > 0 else np.full(m - 1, 1.0 / (m - 1))
            # the other members' mix once per coordinate, so that each share tried blends two
            # matrices instead of summing all m: the search grows linearly with the members
            others = weighted_mean([p for j, p in enumerate(prob_list) if j != i], rest)
            if fast:
                scores = map_at_k_shares(others, prob_list[i], targets, shares)
            else:
                scores = [score_share(others, prob_list[i], share) for share in shares]
            for share, score in zip(shares, scores, strict=True):
                cand = np.insert(rest * (1.0 - share), i, share)
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


def fold_held_out(
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
    weights: list[float]  # what a submission uses: equal for mean and rank, else the fitted ones
    fitted_weights: list[float]  # the weights fitted on all rows (used only by "weighted")
    scores: dict  # the metric of {"mean", "rank", "weighted" (fold-held-out), "weighted_in_sample"}
    fold_weights: list[list[float]]  # the weights each held-out fold got (their spread)
    held_out_probs: np.ndarray  # the chosen method's OOF scores, fold-held-out where tuned


def combine(method: str, prob_list: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Apply a combination chosen by `tune_ensemble` to new predictions (e.g. the eval set),
    with the weights it recorded: equal over the averaged members for "mean" and "rank" (0
    for a member they leave out, such as the frequency prior), the fitted ones for "weighted"."""
    if method == "rank":
        return rank_average(prob_list, weights)
    if method in ("mean", "weighted"):
        return weighted_mean(prob_list, weights)
    raise ValueError(f"unknown ensemble method {method!r}")


def tune_ensemble(
    prob_list: Sequence[np.ndarray],
    targets: np.ndarray,
    fold: np.ndarray,
    metric: Metric = map_at_k_matrix,
    averaged: Sequence[bool] | None = None,
) -> EnsembleResult:
    """Compare the plain mean, rank averaging and fitted weights; choose by held-out `metric`.

    All matrices are aligned by row with `targets` and `fold`. `averaged` marks the members
    the plain mean and the rank average cover (default: all). A baseline such as the
    frequency prior joins as a member the weight search may lean on, but it is not a model:
    averaging it in with an equal share would only dilute the models, and the fitted weights,
    held out, pay for their noise (three folds of a few hundred images each), so the honest
    comparison for an ensemble of models is their plain mean.
    """
    fold = np.asarray(fold)
    plain = np.ones(len(prob_list)) if averaged is None else np.asarray(averaged, dtype=float)
    if len(plain) != len(prob_list) or not plain.any():
        raise ValueError(f"`averaged` must mark some of the {len(prob_list)} members")
    plain = plain / plain.sum()
    mean = weighted_mean(prob_list, plain)
    rank = rank_average(prob_list, plain)

    def fit(rows):
        return fit_weights([p[rows] for p in prob_list], targets[rows], metric=metric)

    def apply(w, rows):
        return weighted_mean([p[rows] for p in prob_list], w)

    full_w = fit(np.ones(len(targets), dtype=bool))
    if len(np.unique(fold)) > 1:
        held_out, fold_w = fold_held_out(fit, apply, fold, len(targets))
        weighted = metric(held_out, targets)
    else:  # one validation split (a folder dataset's val/): fitted weights cannot be held out
        held_out, fold_w, weighted = mean, [], float("-inf")
    scores = {
        "mean": metric(mean, targets),
        "rank": metric(rank, targets),
        "weighted": weighted,
        "weighted_in_sample": metric(weighted_mean(prob_list, full_w), targets),
    }
    # ties go to the simpler method: mean before rank before fitted weights
    method = max(
        ["mean", "rank", "weighted"],
        key=lambda name: (scores[name], -["mean", "rank", "weighted"].index(name)),
    )
    chosen = {"mean": mean, "rank": rank, "weighted": held_out}[method]
    used = full_w if method == "weighted" else plain
    return EnsembleResult(
        method=method,
        weights=[float(x) for x in used],
        fitted_weights=[float(x) for x in full_w],
        scores={name: None if np.isinf(v) else float(v) for name, v in scores.items()},
        fold_weights=[[float(x) for x in w] for w in fold_w],
        held_out_probs=chosen,
    )
