"""Single-label submissions, `id,label`: write, read back and validate.

`id` is the test image's id as `fathom.data.imagefolder` names it (its path relative to the dataset
root, without extension, e.g. `test/img_00042`); `label` is a class name, exactly as its
train folder is spelled (a scorer compares strings: `tilapia` is not `Tilapia`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio
from fathom.errors import FathomError
from fathom.submission import Problem, read_submission

HEADER = ["id", "label"]


def make_label_submission(
    ids: Sequence[str], probs: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Each image's most probable class name (ties: the lower class index)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape != (len(ids), len(class_names)):
        raise ValueError(
            f"probabilities of shape {probs.shape} for {len(ids)} ids and {len(class_names)} classes"
        )
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({"id": list(ids), "label": names[probs.argmax(axis=1)]})


def validate_labels(
    frame: pd.DataFrame, test_ids: Collection[str], class_names: Collection[str]
) -> list[Problem]:
    """Every reason a scorer would reject or mis-score this submission, with its CSV line."""
    if list(frame.columns) != HEADER:
        return [
            Problem(
                1, f"header must be `{','.join(HEADER)}`, got `{','.join(map(str, frame.columns))}`"
            )
        ]
    expected, known = set(test_ids), set(class_names)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, (uid, label) in enumerate(frame[HEADER].itertuples(index=False, name=None)):
        line, uid, label = i + 2, str(uid), str(label)
        if uid in seen:
            problems.append(Problem(line, f"id {uid} appears again (first on line {seen[uid]})"))
        else:
            seen[uid] = line
        if uid not in expected:
            problems.append(Problem(line, f"id {uid!r} is not a test image"))
        if label == "":
            problems.append(Problem(line, "label is empty"))
        elif label not in known:
            near = [c for c in known if c.lower() == label.strip().lower()]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(Problem(line, f"label {label!r} is not a class{hint}"))
    missing = expected - set(seen)
    if missing:
        problems.append(
            Problem(0, f"{len(missing)} test image(s) missing, e.g. {sorted(missing)[0]}")
        )
    return problems


def write_label_submission(
    path: str | Path,
    frame: pd.DataFrame,
    test_ids: Collection[str],
    class_names: Collection[str],
    *,
    manifest: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate, then write the CSV (and `<path>.json` manifest, if given) atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FathomError(f"{path}: already exists (pass --overwrite, or choose another name)")
    problems = validate_labels(frame.astype(str), test_ids, class_names)
    if problems:
        raise FathomError(f"submission not written, it would fail validation: {problems[0]}")
    fileio.write_csv(path, frame[HEADER])
    if manifest is not None:
        fileio.write_json(path.with_suffix(".json"), manifest)
    return path


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


def score_label_files(submission: str | Path, truth: str | Path) -> dict[str, float]:
    return score_labels(read_submission(submission), read_submission(truth))
