"""The competition's metric as pure functions: MAP@K, sAUC and the final score.

MAP@K follows the organisers' rules (the `apk` of Kaggle's ml_metrics): walk the predicted
list (cut at K); a hit is a true label not already counted, so a duplicate takes its rank but
never scores; AP is the sum of precision at each hit divided by min(#true, K).
Labels are compared as given: the submission scorer compares strings, so "1.0" is not "1".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

K = 20


def average_precision_at_k(predicted: Sequence, actual: Collection, k: int = K) -> float:
    """AP@k of one ranked prediction list against a set of true labels."""
    actual = set(actual)
    if not actual:
        return 0.0
    score, hits, counted = 0.0, 0, set()
    for rank, label in enumerate(list(predicted)[:k], start=1):
        if label in actual and label not in counted:
            hits += 1
            counted.add(label)
            score += hits / rank
    return score / min(len(actual), k)


def map_at_k(predicted: Sequence[Sequence], actual: Sequence[Collection], k: int = K) -> float:
    """Mean of AP@k over images (lists aligned by position)."""
    if len(predicted) != len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} truths")
    if not len(actual):
        return float("nan")
    return float(
        np.mean([average_precision_at_k(p, a, k) for p, a in zip(predicted, actual, strict=True)])
    )


def map_at_k_matrix(scores: np.ndarray, targets: np.ndarray, k: int = K) -> float:
    """MAP@k for a score matrix (n_images, n_classes) against a 0/1 target matrix.

    Vectorised twin of `map_at_k` for training loops: the ranking is each row's top k scores
    (ties broken by column order), which can have no duplicates.
    """
    return float(ap_at_k_matrix(scores, targets, k).mean()) if len(scores) else float("nan")


def ap_at_k_matrix(scores: np.ndarray, targets: np.ndarray, k: int = K) -> np.ndarray:
    """Per-row AP@k for a score matrix against a 0/1 target matrix."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    k = min(k, scores.shape[1])
    # stable sort of negated scores: equal scores keep column order, as `rank_categories` does
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(targets, top, axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_true = targets.sum(axis=1)
    denom = np.minimum(n_true, k).astype(np.float64)
    ap = np.where(n_true > 0, (precision * hits).sum(axis=1) / np.maximum(denom, 1), 0.0)
    return ap


def sauc(is_out_of_sample: Sequence, osd_score: Sequence) -> float:
    """Rescaled AUC, 2*AUC - 1: 0 for a constant or random score, 1 for a perfect one."""
    y = np.asarray(is_out_of_sample).astype(int)
    if len(np.unique(y)) < 2:
        raise ValueError("sAUC needs both in-sample and out-of-sample images in the truth")
    return float(2.0 * roc_auc_score(y, np.asarray(osd_score, dtype=np.float64)) - 1.0)


def competition_score(map20: float, sauc_value: float) -> float:
    """The leaderboard score: (sAUC + MAP@20) / 2."""
    return (sauc_value + map20) / 2.0
