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

from fathom.errors import FathomError

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


def top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """(N, k) column indices of each row's k highest scores, best first, ties in column order.

    Exactly `np.argsort(-scores, axis=1, kind="stable")[:, :k]` (the order `rank_categories`
    ranks a submission in), without sorting all columns: the weight search calls MAP@20
    hundreds of times on 290 columns of which 20 matter. `argpartition` picks k columns per
    row; it is the right set unless columns tied with the k-th score are left out, and then
    that row keeps the lowest-numbered tied ones. A stable sort of the k, put in column order
    first, finishes the job.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n, c = scores.shape
    k = min(k, c)
    # NaN sorts last in argsort but breaks the comparisons below; 2k >= c saves little
    if k == 0 or 2 * k >= c or np.isnan(scores).any():
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    neg = -scores
    cols = np.argpartition(neg, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(neg, cols, axis=1).max(axis=1, keepdims=True)
    # a tie at the boundary that argpartition may have broken the wrong way
    loose = np.flatnonzero((neg <= kth).sum(axis=1) > k)
    if len(loose):
        sub, t = neg[loose], kth[loose]
        tied = sub == t
        need = k - (sub < t).sum(axis=1, keepdims=True)
        keep = (sub < t) | (tied & (np.cumsum(tied, axis=1) <= need))
        cols[loose] = np.nonzero(keep)[1].reshape(len(loose), k)
    cols = np.sort(cols, axis=1)
    order = np.argsort(np.take_along_axis(neg, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


class TrueLabels:
    """A 0/1 target matrix with its true labels' positions found once: the weight search scores
    hundreds of candidate matrices against the same targets, and finding the labels (a
    `nonzero` of the whole matrix) was a quarter of each MAP@20 (issue 19). Any function here
    that takes `targets` takes this in its place, with the same result."""

    def __init__(self, targets: np.ndarray):
        self.matrix = np.asarray(targets) > 0
        self.n_true = self.matrix.sum(axis=1)
        # row-major: a row's labels consecutive (np.nonzero's order; 2-D nonzero is ~10x slower)
        self.rows, self.cols = np.divmod(np.flatnonzero(self.matrix), self.matrix.shape[1])
        self.slot = np.arange(len(self.rows)) - np.searchsorted(self.rows, self.rows)


def true_labels(targets) -> TrueLabels:
    return targets if isinstance(targets, TrueLabels) else TrueLabels(targets)


def true_label_ranks(scores: np.ndarray, targets: np.ndarray | TrueLabels) -> np.ndarray:
    """(N, L) 0-based place of each row's true labels in its ranking (L = most true labels in
    a row; a row's unused slots hold the number of columns, a place no k reaches).

    The ranking is `top_k_columns`' (a stable sort of the negated scores): a column is ahead
    of a true label if its score is higher, or equal and its column lower. Counting that is
    one comparison of the score matrix per label slot, where ranking it is a sort per row.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_rows, n_cols = scores.shape
    labels = true_labels(targets)
    rows, cols, slot = labels.rows, labels.cols, labels.slot
    n_slots = int(slot.max()) + 1 if len(rows) else 0
    ranks = np.full((n_rows, n_slots), n_cols, dtype=np.int64)
    index = np.arange(n_cols)
    for j in range(n_slots):
        here = slot == j
        r, c = rows[here], cols[here]
        # only the rows with a j-th label are compared: most rows have one or two, and
        # comparing all rows at every slot was most of the weight search's time (issue 19)
        sub = scores if len(r) == n_rows else scores[r]
        own = scores[r, c][:, None]
        ahead = np.count_nonzero(sub > own, axis=1)
        tied = sub == own
        some = np.flatnonzero(np.count_nonzero(tied, axis=1) > 1)  # tied with another column
        if len(some):
            ahead[some] += np.count_nonzero(tied[some] & (index < c[some, None]), axis=1)
        ranks[r, j] = ahead
    return ranks


MAX_RANKED_LABELS = 8  # up to this many true labels per row, AP is counted from their ranks


def ap_from_ranks(ranks: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    """Per-row AP@k from each true label's 0-based place in its row's ranking (the layout of
    `true_label_ranks`; any place >= k, such as an unused slot's, scores nothing).

    A hit's precision is i / (rank + 1), i = the row's true labels ranked up to it (all hits,
    as it is one); laid out by rank and summed like `ap_at_k_matrix`'s top-k path, so every
    path that ranks the labels agrees with it to the bit.
    """
    n_rows = len(ranks)
    denom = np.maximum(np.minimum(n_true, k), 1).astype(np.float64)
    i = (ranks[:, None, :] <= ranks[:, :, None]).sum(axis=2)
    r, j = np.nonzero(ranks < k)
    precision = np.zeros((n_rows, k))
    precision[r, ranks[r, j]] = i[r, j] / (ranks[r, j] + 1.0)
    return np.where(n_true > 0, precision.sum(axis=1) / denom, 0.0)


def ap_at_k_matrix(scores: np.ndarray, targets: np.ndarray | TrueLabels, k: int = K) -> np.ndarray:
    """Per-row AP@k for a score matrix against a 0/1 target matrix.

    Equal scores keep column order, as `rank_categories` does. With a few true labels per row
    (FathomNet has 1-3) each true label's rank is counted directly (`true_label_ranks`): the
    weight search calls this hundreds of times, and ranking all 290 columns of every row was
    most of its time. Otherwise (or with NaN scores) each row's top k columns are selected.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = true_labels(targets)
    targets, n_true = labels.matrix, labels.n_true
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    denom = np.maximum(np.minimum(n_true, k), 1).astype(np.float64)
    if n_true.max(initial=0) <= MAX_RANKED_LABELS and not np.isnan(scores).any():
        return ap_from_ranks(true_label_ranks(scores, labels), n_true, k)
    top = top_k_columns(scores, k)
    hits = np.take_along_axis(targets, top, axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return np.where(n_true > 0, (precision * hits).sum(axis=1) / denom, 0.0)


def blend_shares(others: np.ndarray, member: np.ndarray, share: float) -> np.ndarray:
    """`others * (1 - share) + member * share` by the float operations the weight search
    (`fathom.ensemble.fit_weights`) uses, in its order: the scores `map_at_k_shares` ranks."""
    return np.multiply(others, 1.0 - share) + np.multiply(member, share)


def _near_columns(others, member, labels: TrueLabels, o_own, m_own, margin: float):
    """(label, column, others' value, member's value) of each column not clearly behind a true
    label in both matrices (a few per label): only they can be ahead of it at some share.

    One label slot at a time, as `true_label_ranks` counts: the first slot of every row is
    compared in the matrices themselves, where gathering each label's row into fresh
    (labels, columns) copies was most of the time (page faults)."""
    n_rows, n_cols = others.shape
    found = []
    for j in range(int(labels.slot.max()) + 1 if len(labels.rows) else 0):
        idx = np.flatnonzero(labels.slot == j)
        r, c = labels.rows[idx], labels.cols[idx]
        o_sub = others if len(r) == n_rows else others[r]  # rows sorted: all rows, in order
        m_sub = member if len(r) == n_rows else member[r]
        near = (o_sub >= (o_own[idx] - margin)[:, None]) | (m_sub >= (m_own[idx] - margin)[:, None])
        near[np.arange(len(r)), c] = False  # the label itself
        at, col = np.divmod(np.flatnonzero(near), n_cols)  # np.nonzero(near), faster
        found.append((idx[at], col, o_sub[at, col], m_sub[at, col]))
    if not found:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def map_at_k_shares(
    others: np.ndarray,
    member: np.ndarray,
    targets: np.ndarray | TrueLabels,
    shares: Sequence[float],
    k: int = K,
) -> list[float]:
    """MAP@k of `blend_shares(others, member, s)` for each share s: the same floats, to the bit,
    as `map_at_k_matrix` of each blend, without materialising the blends (issue 19: the weight
    search tried ~1,900 blends of 5,950 x 290 to rank 9,000 true labels in them).

    A column whose values in `others` and in `member` both lie clearly below a true label's
    (by a margin float rounding cannot close) stays behind it at every share, and one clearly
    above in both stays ahead; only the columns in between are blended per share, by the same
    operations on the gathered values, so ranks and ties (column order) come out as in the
    full blend. A label that k columns always beat scores nothing at any share. Scores that
    the rank path of `ap_at_k_matrix` would not take (NaN, > 8 labels in a row) and non-finite
    ones are blended in full.
    """
    others = np.asarray(others, dtype=np.float64)
    member = np.asarray(member, dtype=np.float64)
    labels = true_labels(targets)
    n_rows, n_cols = others.shape
    k = min(k, n_cols)
    scale = max(np.abs(others).max(initial=0.0), np.abs(member).max(initial=0.0))
    if (
        n_rows == 0
        or labels.n_true.max(initial=0) > MAX_RANKED_LABELS
        or not np.isfinite(scale)
        or scale > 1e300  # a sum that overflows to inf would tie what the bounds keep apart
    ):
        return [map_at_k_matrix(blend_shares(others, member, s), labels, k) for s in shares]
    # each blended value lies within ~3 ulp of scale of its exact convex combination, and
    # two columns' exact blends stay at least their smaller gap apart: 1e-12 is ample
    margin = 1e-12 * scale + 1e-300
    rows, cols = labels.rows, labels.cols
    n_labels = len(rows)
    o_own, m_own = others[rows, cols], member[rows, cols]
    lab, col, o_near, m_near = _near_columns(others, member, labels, o_own, m_own, margin)
    ahead = (o_near > (o_own + margin)[lab]) & (m_near > (m_own + margin)[lab])
    n_ahead = np.bincount(lab[ahead], minlength=n_labels)
    # a label k columns always beat is out of the top k at every share: no exact rank needed
    unsure = ~ahead & (n_ahead < k)[lab]
    lab, col, o_unsure, m_unsure = lab[unsure], col[unsure], o_near[unsure], m_near[unsure]
    earlier = col < cols[lab]  # ahead on a tie (a stable sort keeps column order)
    n_slots = int(labels.slot.max()) + 1 if n_labels else 0
    ranks = np.full((n_rows, n_slots), n_cols, dtype=np.int64)
    out, ap, place = [], None, None
    for share in shares:
        own = blend_shares(o_own, m_own, share)[lab]
        theirs = blend_shares(o_unsure, m_unsure, share)
        beat = (theirs > own) | ((theirs == own) & earlier)
        before, place = place, n_ahead + np.bincount(lab[beat], minlength=n_labels)
        ranks[rows, labels.slot] = place
        if ap is None:
            ap = ap_from_ranks(ranks, labels.n_true, k)
        else:  # a row's AP is computed alone: the rows whose labels kept their places keep it
            moved = np.unique(rows[place != before])
            ap[moved] = ap_from_ranks(ranks[moved], labels.n_true[moved], k)
        out.append(float(ap.mean()))
    return out


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


# --- the metrics a competition names (competition.toml: metric = "...")

METRIC_FORMATS = {
    "accuracy": ("single",),
    "macro_f1": ("single",),
    "mean_f1": ("set",),
    "auc": ("onehot",),
    "map@K": ("ranked",),
    "fathomnet": (),  # the FathomNet layout's own (id,categories,osd); no train.csv format
}
METRIC_LABELS = {
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "mean_f1": "mean F1",
    "auc": "mean column AUC",
    "fathomnet": "(sAUC + MAP@20) / 2",
}


def metric_k(name: str) -> int | None:
    """K of a `map@K` name (None for any other name)."""
    head, sep, tail = name.partition("@")
    if head == "map" and sep:
        return int(tail) if tail.isdigit() and int(tail) > 0 else 0
    return None


def metric_label(name: str) -> str:
    k = metric_k(name)
    return f"MAP@{k}" if k else METRIC_LABELS.get(name, name)


def check_metric_format(name: str, fmt: str, where) -> None:
    """Refuse a metric the registry lacks, or one that cannot score the format's submission."""
    k = metric_k(name)
    key = "map@K" if k is not None else name
    if key not in METRIC_FORMATS or k == 0:
        raise FathomError(
            f"{where}: unknown metric {name!r}; choose from accuracy, macro_f1, mean_f1, map@K "
            "(e.g. map@5), auc, fathomnet"
        )
    if fmt not in METRIC_FORMATS[key]:
        fits = [m for m, f in METRIC_FORMATS.items() if fmt in f]
        raise FathomError(
            f"{where}: metric {name!r} does not score a {fmt} submission; choose {' or '.join(fits)}"
        )


def macro_f1_labels(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """scikit-learn's macro F1 over the labels of the truth and the predictions (Kaggle's)."""
    from sklearn.metrics import f1_score

    return float(f1_score(list(y_true), list(y_pred), average="macro", zero_division=0))


def mean_f1_sets(actual: Sequence[Collection], predicted: Sequence[Collection]) -> float:
    """Per-image F1 of the predicted label set against the true one, averaged over images
    (scikit-learn's average="samples"; an image with both sets empty scores 0, as there)."""
    if len(actual) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} truths")
    t = [set(a) for a in actual]
    p = [set(b) for b in predicted]
    f = [2 * len(a & b) / (len(a) + len(b)) if a or b else 0.0 for a, b in zip(t, p, strict=True)]
    return float(np.mean(f)) if f else float("nan")


def mean_column_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean over columns of ROC AUC (Plant Pathology 2020's metric). A column whose truth is
    all one class has no AUC and is left out of the mean (scikit-learn would raise)."""
    targets, scores = np.asarray(targets) > 0, np.asarray(scores, dtype=np.float64)
    aucs = [
        roc_auc_score(targets[:, j], scores[:, j])
        for j in range(targets.shape[1])
        if 0 < targets[:, j].sum() < len(targets)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def macro_f1_matrix(probs: np.ndarray, targets: np.ndarray) -> float:
    return macro_f1_labels(np.asarray(targets).argmax(axis=1), np.asarray(probs).argmax(axis=1))


F1_GRID = np.linspace(0.05, 0.95, 19)


def predict_sets(
    probs: np.ndarray, thresholds: np.ndarray | float, at_least_one: bool = True
) -> np.ndarray:
    """Boolean (N, C): a category is predicted when its probability reaches its threshold.

    With `at_least_one`, an image with nothing above threshold gets its top category (every
    FathomNet image holds an organism; a set metric's submission names a class per row), the
    rule `fathom tune` fits thresholds under and submissions apply.
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


def best_threshold_f1_matrix(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean F1 of label sets at the best threshold of a coarse grid: what an ensemble of
    probabilities is worth to a set metric once its threshold is tuned (as `fathom tune` does)."""
    return max(sample_f1(predict_sets(probs, t), targets) for t in F1_GRID)


NEW = -1  # the new token's column in a ranked list's class ids


def ranked_ap(probs: np.ndarray, truth: np.ndarray, t: float, k: int) -> np.ndarray:
    """Per-row AP@k of the top-k classes with the new token ranked as a class of probability
    `t` (ties: the token first); `truth` holds a column or NEW per row."""
    probs = np.asarray(probs, dtype=np.float64)
    new_pos = np.minimum((probs > t).sum(axis=1), k)  # classes ahead of the token
    rows = np.arange(len(probs))
    own = probs[rows, np.maximum(truth, 0)]
    # the true class's place among the classes (a stable sort: ties keep column order)
    ahead = (probs > own[:, None]).sum(axis=1) + (
        (probs == own[:, None]) & (np.arange(probs.shape[1]) < np.maximum(truth, 0)[:, None])
    ).sum(axis=1)
    place = np.where(truth == NEW, new_pos, ahead + (new_pos <= ahead))
    return np.where(place < k, 1.0 / (place + 1.0), 0.0)


def threshold_candidates(probs: np.ndarray, n: int = 41) -> np.ndarray:
    """Every distinct place the token can take: each row's top probabilities as cut points,
    thinned to a quantile grid, plus "always first" and "never listed"."""
    top = np.sort(np.asarray(probs, dtype=np.float64).max(axis=1))
    grid = np.quantile(top, np.linspace(0, 1, n)) if len(top) else np.zeros(0)
    return np.unique(np.concatenate([[-1.0, 2.0], grid]))


def new_token_map_matrix(probs: np.ndarray, targets: np.ndarray, k: int) -> float:
    """MAP@k with the new token inserted at the best of a coarse grid of cuts (rows with no
    class are the token's): what an ensemble is worth once `fathom tune` places the token."""
    targets = np.asarray(targets) > 0
    truth = np.where(targets.any(axis=1), targets.argmax(axis=1), NEW)
    cuts = threshold_candidates(probs, 11)
    return max(float(ranked_ap(probs, truth, t, k).mean()) for t in cuts)


def matrix_metric(name: str, new_token: bool = False):
    """`(probs, targets) -> float` of a competition metric, for tuning on OOF matrices. A
    ranked metric with `new_token` places the token as well (an all-zero row is the token's);
    without, such a row scores 0 whatever the weights."""
    k = metric_k(name)
    if k and new_token:
        return lambda probs, targets: new_token_map_matrix(probs, targets, k)
    if k:
        return lambda probs, targets: map_at_k_matrix(probs, targets, k)
    table = {
        "accuracy": accuracy_matrix,
        "macro_f1": macro_f1_matrix,
        "mean_f1": best_threshold_f1_matrix,
        "auc": lambda probs, targets: mean_column_auc(targets, probs),
    }
    if name not in table:
        raise FathomError(f"metric {name!r} cannot be tuned on OOF matrices")
    return table[name]
