"""`fathom score`: a submission file against a truth file, as the competition's scorer does.

Multi-label (`id,categories,osd`): MAP@20, sAUC and their mean. Single-label (`id,label`):
accuracy and macro F1. The truth file's header says which. A train.csv competition's
submission is scored by its own metric (fathom/formats.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fathom.errors import FathomError
from fathom.metrics import K, competition_score, map_at_k, sauc
from fathom.submission import HEADER, LABEL_HEADER, read_submission


def score_frames(sub, truth, sub_name: str = "submission", truth_name: str = "truth") -> dict:
    """Both frames hold strings; truth ids missing from the submission score AP 0 and osd 0."""
    for name, frame in ((sub_name, sub), (truth_name, truth)):
        missing = set(HEADER) - set(frame.columns)
        if missing:
            raise FathomError(
                f"{name}: lacks column(s) {', '.join(sorted(missing))} (a multi-label file is "
                f"`{','.join(HEADER)}`; header here `{','.join(map(str, frame.columns))}`)"
            )
    check_truth(truth, sub, truth_name, sub_name)
    for line, flag in enumerate(truth["osd"], start=2):
        if str(flag).strip() not in ("0", "1", "0.0", "1.0"):
            # sAUC needs 0/1 flags: another value would be truncated to one of them silently
            raise FathomError(f"{truth_name}, line {line}: osd {flag!r} is not 0 or 1")
    by_id = dict(zip(sub["id"], zip(sub["categories"], sub["osd"], strict=True), strict=False))
    predicted, actual, flags, osd = [], [], [], []
    for uid, cats, flag in zip(truth["id"], truth["categories"], truth["osd"], strict=True):
        guess, score = by_id.get(uid, ("", "0"))
        predicted.append(str(guess).split(" "))
        actual.append(set(str(cats).split()))
        flags.append(int(float(flag)))
        try:
            osd.append(float(score))
        except ValueError:
            raise FathomError(f"submission osd {score!r} for {uid} is not a number") from None
    map20 = map_at_k(predicted, actual, K)
    try:
        s = sauc(flags, osd)
    except ValueError as exc:
        raise FathomError(str(exc)) from None
    return {"map20": map20, "sauc": s, "score": competition_score(map20, s)}


def check_truth(truth: pd.DataFrame, sub: pd.DataFrame, truth_name: str, sub_name: str) -> None:
    """A truth that cannot score this submission: duplicate ids (which row counts?), or no id
    in common (every image would score 0, printed as if it were a real result)."""
    ids = truth["id"].astype(str)
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise FathomError(f"{truth_name}, line {i + 2}: id {ids.iloc[i]} appears again")
    if len(ids) and not set(ids) & set(sub["id"].astype(str)):
        raise FathomError(
            f"{sub_name}: shares no id with the truth {truth_name} (a submission for another "
            "competition or split?)"
        )


def score_labels(submission: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Accuracy and macro F1 of a submission against a truth frame (both `id,label`).

    A truth image the submission lacks counts as wrong.
    """
    from sklearn.metrics import f1_score

    guess = dict(zip(submission["id"].astype(str), submission["label"].astype(str), strict=True))
    y_true = truth["label"].astype(str).to_list()
    y_pred = [guess.get(uid, "") for uid in truth["id"].astype(str)]
    if not y_true:
        raise FathomError("the truth holds no images")
    acc = float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)]))
    f1 = float(
        f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)
    )
    return {"accuracy": acc, "macro_f1": f1, "n": len(y_true)}


def score_files(submission: str | Path, truth: str | Path, comp=None) -> dict:
    """Scores of a submission file; single-label when the truth file is `id,label`; by the
    competition's own metric for a train.csv competition (`comp`, the one the submission's
    manifest names, or the one whose hidden/ folder holds the truth)."""
    from fathom.formats import csv_competition_for, score_file

    layout = csv_competition_for(submission, truth, comp)
    if layout is not None:
        return score_file(submission, truth, layout)
    sub, true = read_submission(submission), read_submission(truth)
    if list(true.columns) == LABEL_HEADER:
        missing = set(LABEL_HEADER) - set(sub.columns)
        if missing:
            raise FathomError(
                f"{submission}: the truth is single-label (`id,label`) but the submission lacks "
                f"column(s) {', '.join(sorted(missing))}"
            )
        if not len(true):
            raise FathomError(f"{truth}: the truth holds no images")
        check_truth(true, sub, str(truth), str(submission))
        return score_labels(sub, true)
    if set(HEADER) - set(true.columns):
        raise FathomError(
            f"{truth}: header `{','.join(map(str, true.columns))}` is not a truth file's: "
            f"`{','.join(HEADER)}` (multi-label, e.g. a synthetic competition's "
            "hidden/eval_truth.csv) or `id,label` (single-label, a folder dataset's "
            "hidden/test_truth.csv)"
        )
    if list(sub.columns) == LABEL_HEADER:
        raise FathomError(
            f"{submission}: a single-label submission (`id,label`) but the truth {truth} is "
            f"multi-label (`{','.join(HEADER)}`): score it against its folder dataset's "
            "hidden/test_truth.csv"
        )
    return score_frames(sub, true, str(submission), str(truth))


def format_scores(result: dict) -> str:
    if "metric" in result:  # a train.csv competition's metric
        from fathom.formats import format_score

        return format_score(result)
    if "accuracy" in result:
        return f"accuracy {result['accuracy']:.4f}   macro F1 {result['macro_f1']:.4f}   ({result['n']} images)"
    return f"MAP@20 {result['map20']:.4f}   sAUC {result['sauc']:.4f}   score {result['score']:.4f}"
