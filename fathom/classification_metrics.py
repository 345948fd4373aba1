"""Single-label classification metrics as pure functions over (probs, labels).

`probs` is an (N, C) matrix of class probabilities (softmax), `labels` the N true class
indices 0..C-1. Everything here comes from scikit-learn except the list of most confused
pairs, which it does not offer. Macro averages run over the classes that occur in the truth
or the predictions (scikit-learn's `classification_report` default), so a class the split
never shows does not drag the mean down with a 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from fathom import fileio


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


def plot_confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix as a PNG (a cell reads: share of the true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = max(5.0, 0.32 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(norm, display_labels=list(class_names))
    # cell values are legible up to ~15 classes; beyond that the colour carries them
    display.plot(ax=ax, include_values=n <= 15, values_format=".2f", cmap="Blues",
                 xticks_rotation=90, colorbar=True)  # fmt: skip
    ax.set_title(title or "confusion matrix (rows: true class, normalised)")
    fig.tight_layout()
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
