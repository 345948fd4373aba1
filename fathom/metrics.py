"""Metrics as pure functions over arrays.

Multi-label (FathomNet): the competition's MAP@K, sAUC and the final score.

MAP@K follows the organisers' rules (the `apk` of Kaggle's ml_metrics): walk the predicted
list (cut at K); a hit is a true label not already counted, so a duplicate takes its rank but
never scores; AP is the sum of precision at each hit divided by min(#true, K).
Labels are compared as given: the submission scorer compares strings, so "1.0" is not "1".

Single-label (folder datasets), over (probs, labels) with `probs` an (N, C) softmax matrix and
`labels` the N true class indices: accuracy, top-k accuracy, macro precision / recall / F1, the
confusion matrix (all scikit-learn's) and the list of most confused pairs (which it lacks).
Macro averages run over the classes that occur in the truth or the predictions (scikit-learn's
`classification_report` default), so a class the split never shows does not drag the mean down.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

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


def accuracy_matrix(probs: np.ndarray, targets: np.ndarray) -> float:
    """Accuracy of each row's top class against one-hot targets (the single-label twin of
    `map_at_k_matrix`, with the same signature, for the ensemble search)."""
    return float((np.asarray(probs).argmax(axis=1) == np.asarray(targets).argmax(axis=1)).mean())


# --- single-label classification


def _check(probs: np.ndarray, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probabilities of shape {probs.shape} for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no images to score")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}")
    return probs, labels


def predictions(probs: np.ndarray) -> np.ndarray:
    """The most probable class of each row (ties: the lower index)."""
    return np.asarray(probs).argmax(axis=1)


def accuracy(probs: np.ndarray, labels: Sequence[int]) -> float:
    probs, labels = _check(probs, labels)
    return float(accuracy_score(labels, predictions(probs)))


def top_k_accuracy(probs: np.ndarray, labels: Sequence[int], k: int = 3) -> float:
    """Share of images whose true class is among the k most probable."""
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    if k >= n_classes:
        return 1.0
    return float(top_k_accuracy_score(labels, probs, k=k, labels=np.arange(n_classes)))


def macro_precision_recall_f1(probs: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    probs, labels = _check(probs, labels)
    p, r, f, _ = precision_recall_fscore_support(
        labels, predictions(probs), average="macro", zero_division=0
    )
    return {"macro_precision": float(p), "macro_recall": float(r), "macro_f1": float(f)}


def summary(probs: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """The headline numbers: accuracy, top-3 accuracy, macro precision / recall / F1, n."""
    return {
        "accuracy": accuracy(probs, labels),
        "top3": top_k_accuracy(probs, labels, 3),
        **macro_precision_recall_f1(probs, labels),
        "n": int(len(labels)),
    }


def per_class_report(
    probs: np.ndarray, labels: Sequence[int], class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per class: precision, recall, F1, support (true count) and predicted count."""
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    if len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} columns")
    pred = predictions(probs)
    p, r, f, support = precision_recall_fscore_support(
        labels, pred, labels=np.arange(n_classes), average=None, zero_division=0
    )
    return pd.DataFrame(
        {
            "class": list(class_names),
            "precision": p,
            "recall": r,
            "f1": f,
            "support": support.astype(int),
            "predicted": np.bincount(pred, minlength=n_classes),
        }
    )


def confusion(probs: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    probs, labels = _check(probs, labels)
    return confusion_matrix(labels, predictions(probs), labels=np.arange(probs.shape[1]))


def most_confused(cm: np.ndarray, class_names: Sequence[str], top: int = 10) -> pd.DataFrame:
    """The largest off-diagonal cells of a confusion matrix, largest first.

    Written by hand (fastai's `most_confused` is the model; scikit-learn has none). `share`
    is the count over the true class's support: how much of that class goes astray this way.
    Ties keep row-major order (true class, then predicted class).
    """
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    true_idx, pred_idx = np.nonzero(off)
    counts = off[true_idx, pred_idx]
    order = np.argsort(-counts, kind="stable")[:top]
    support = cm.sum(axis=1)
    return pd.DataFrame(
        {
            "true": [class_names[i] for i in true_idx[order]],
            "predicted": [class_names[j] for j in pred_idx[order]],
            "count": counts[order].astype(int),
            "share": counts[order] / support[true_idx[order]],
        }
    )
