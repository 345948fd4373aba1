"""The four submission formats of a train.csv competition (fathom/data/csvtable.py): what
`fathom tune` decides for each on OOF, and how a submission is made, validated and scored.

- `single`: each image's most probable class (`image_id,label`); accuracy or macro F1.
- `set`: each image's classes at or above their thresholds, its top class when none is
  (`image,labels`, space-separated); mean F1. The thresholds (one global, or one per class)
  are fitted on OOF and chosen by their fold-held-out F1.
- `onehot`: a probability per class column, in the sample submission's column order; mean
  column-wise ROC AUC.
- `ranked`: K classes, best first, space-separated; MAP@K. With a `new_label` token, where it
  goes in each list is learnt on OOF: the token ranks as if it were a class of probability
  `t`, and `t` maximises MAP@K on OOF rows whose truth is the token (training images labelled
  with it, and those whose class the row's fold model never trained on: to that model they
  are new), scored fold-held-out.

A submission holds exactly the sample submission's columns, its ids and its row order; it is
validated before it is written. Pure functions over arrays and frames, apart from the writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from fathom import fileio
from fathom.data.csvtable import Layout
from fathom.ensemble import fold_held_out
from fathom.errors import FathomError
from fathom.metrics import (
    NEW,
    macro_f1_labels,
    map_at_k,
    mean_column_auc,
    mean_f1_sets,
    metric_label,
    ranked_ap,
    threshold_candidates,
)
from fathom.submission import validate_table

# --- tuning on OOF


def new_truth(targets: np.ndarray, fold: np.ndarray, always_trained: np.ndarray | None = None):
    """Per OOF row, the column of its one true class, or NEW: rows with no class (the new
    token) and rows whose class no training row of their fold holds (their fold's model never
    saw it, as a test image of an individual that training lacks)."""
    targets = np.asarray(targets) > 0
    extra = np.zeros((0, targets.shape[1]), bool) if always_trained is None else always_trained > 0
    truth = np.where(targets.any(axis=1), targets.argmax(axis=1), NEW)
    for f in np.unique(fold):
        seen = targets[fold != f].any(axis=0) | extra.any(axis=0)
        rows = np.flatnonzero((fold == f) & (truth != NEW))
        truth[rows[~seen[truth[rows]]]] = NEW
    return truth


def fit_new_threshold(probs: np.ndarray, truth: np.ndarray, k: int) -> float:
    cands = threshold_candidates(probs)
    scores = [ranked_ap(probs, truth, t, k).mean() for t in cands]
    return float(cands[int(np.argmax(scores))])


def tune_new_token(probs, targets, fold, k: int, always_trained=None) -> dict:
    """Where to insert the new token: the threshold, and MAP@K held-out beside the baselines
    (never listed; always first)."""
    fold = np.asarray(fold)
    truth = new_truth(targets, fold, always_trained)
    n = len(truth)

    def apply(t, rows):
        return ranked_ap(probs[rows], truth[rows], t, k)[:, None]

    held, _ = fold_held_out(
        lambda rows: fit_new_threshold(probs[rows], truth[rows], k), apply, fold, n
    )
    t = fit_new_threshold(probs, truth, k)
    return {
        "threshold": t,
        "n_new": int((truth == NEW).sum()),
        "map_held_out": float(np.mean(held)),
        "map_in_sample": float(ranked_ap(probs, truth, t, k).mean()),
        "map_never": float(ranked_ap(probs, truth, 2.0, k).mean()),
        "map_first": float(ranked_ap(probs, truth, -1.0, k).mean()),
    }


def tune_format(
    layout: Layout, probs, targets, fold, always_trained=None, tune_thresholds=None
) -> tuple[dict, dict | None]:
    """(the tuning file's `format` block, its `thresholds` block or None). A set format's
    thresholds come from `tune_thresholds` (fathom.tune's, passed in: tune calls this module)."""
    info: dict = {
        "format": layout.format,
        "metric": layout.metric,
        "columns": list(layout.submission_columns),
        "k": layout.k,
        "new_label": layout.new_label,
    }
    thresholds = None
    if layout.format == "set":
        thr = tune_thresholds(probs, targets, fold)
        info["sets"] = "per_category" if thr.f1["per_category"] > thr.f1["global"] else "global"
        thresholds = {
            "fitted_on": "ensemble",
            "global": thr.global_threshold,
            "per_category": {str(c): t for c, t in enumerate(thr.category_thresholds)},
            "f1": thr.f1,
        }
    if layout.format == "ranked" and layout.new_label:
        info["new"] = tune_new_token(probs, targets, fold, layout.k, always_trained)
    return info, thresholds


def format_summary(info: dict, thresholds: dict | None) -> list[str]:
    lines = [f"\nformat {info['format']}, metric {metric_label(info['metric'])}"]
    if info.get("sets"):
        lines.append(f"label sets: {info['sets']} thresholds")
    new = info.get("new")
    if new:
        lines.append(
            f"new label {info['new_label']}: inserted where classes fall below "
            f"{new['threshold']:.3f}; OOF MAP@{info['k']} held-out {new['map_held_out']:.4f} "
            f"(never listed {new['map_never']:.4f}, always first {new['map_first']:.4f}; "
            f"{new['n_new']} OOF rows new to their fold's model)"
        )
    return lines


# --- making a submission


def ranked_lists(scores: np.ndarray, probs: np.ndarray, k: int, t: float | None) -> list[list[int]]:
    """Each row's top-k class columns (ties: the lower column), with NEW inserted before the
    first class whose probability is not above `t` (None: no token)."""
    top = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    out = []
    for i, row in enumerate(top):
        row = [int(c) for c in row]
        if t is not None:
            pos = min(int((np.asarray(probs[i]) > t).sum()), k)
            row = (row[:pos] + [NEW] + row[pos:])[:k]
        out.append(row)
    return out


def make_frame(layout: Layout, ids: Sequence[str], scores, probs, tuning: dict) -> pd.DataFrame:
    """The submission frame: the sample's columns, `ids` in its order."""
    names = np.asarray(layout.classes, dtype=object)
    id_col, cols = layout.submission_id, layout.submission_columns
    scores, probs = np.asarray(scores), np.asarray(probs)
    if layout.format == "single":
        return pd.DataFrame({id_col: list(ids), cols[1]: names[scores.argmax(axis=1)]})
    if layout.format == "onehot":
        column = {c: j for j, c in enumerate(layout.classes)}
        frame = pd.DataFrame({id_col: list(ids)})
        for c in cols[1:]:
            frame[c] = [f"{v:.6f}" for v in probs[:, column[c]]]
        return frame
    if layout.format == "set":
        thr = tuning["thresholds"]
        if tuning["format"].get("sets") == "per_category":
            cut = np.array([thr["per_category"][str(j)] for j in range(len(names))])
        else:
            cut = np.full(len(names), thr["global"])
        from fathom.metrics import predict_sets

        pred = predict_sets(probs, cut)
        labels = [" ".join(names[np.flatnonzero(row)]) for row in pred]
        return pd.DataFrame({id_col: list(ids), cols[1]: labels})
    new = tuning["format"].get("new")
    lists = ranked_lists(scores, probs, layout.k, new["threshold"] if new else None)
    text = [" ".join(layout.new_label if c == NEW else names[c] for c in row) for row in lists]
    return pd.DataFrame({id_col: list(ids), cols[1]: text})


def prior_frame(layout: Layout, train: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """The format's trivial baseline: the most frequent class (single, set), the class
    frequencies (onehot), or the classes and the new token ranked by frequency (ranked)."""
    counts = np.zeros(len(layout.classes))
    for row in train["categories"]:
        counts[list(row)] += 1
    freq = counts / max(len(train), 1)
    rows = np.tile(freq, (len(ids), 1))
    if layout.format == "ranked" and layout.new_label:
        n_new = sum(1 for row in train["categories"] if not row)
        t = n_new / max(len(train), 1)
        lists = ranked_lists(rows, rows, layout.k, t)
        text = [
            " ".join(layout.new_label if c == NEW else layout.classes[c] for c in r) for r in lists
        ]
        return pd.DataFrame({layout.submission_id: list(ids), layout.submission_columns[1]: text})
    # a set of one: the most frequent class alone, which a tuned threshold must beat
    tuning = {"format": {"sets": "global"}, "thresholds": {"global": 2.0}}
    return make_frame(layout, ids, rows, rows, tuning)


def write_frame(path, frame: pd.DataFrame, layout: Layout, test_ids, overwrite=False) -> Path:
    """Validate, then write atomically; never replaces a file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FathomError(f"{path}: already exists (pass --overwrite, or choose another name)")
    problems = validate_table(frame, layout, test_ids)
    if problems:
        raise FathomError(f"submission not written, it would fail validation: {problems[0]}")
    return fileio.write_csv(path, frame)


# --- scoring


def score_frame(
    sub: pd.DataFrame,
    truth: pd.DataFrame,
    layout: Layout,
    truth_name="truth",
    sub_name="submission",
) -> dict:
    """The competition's metric of a submission against a truth in the submission's format
    (both read as strings). A truth image the submission lacks scores as a wrong answer."""
    cols = list(layout.submission_columns)
    for name, frame in ((sub_name, sub), (truth_name, truth)):
        if list(map(str, frame.columns)) != cols:
            raise FathomError(
                f"{name}: header `{','.join(map(str, frame.columns))}` is not the competition's "
                f"`{','.join(cols)}`"
            )
    if truth.empty:
        raise FathomError(f"{truth_name}: the truth holds no images")
    by_id = {row[0]: row[1:] for row in sub.astype(str).itertuples(index=False, name=None)}
    true_rows = list(truth.astype(str).itertuples(index=False, name=None))
    blank = tuple("" for _ in cols[1:])
    guess = [by_id.get(r[0], blank) for r in true_rows]
    metric, n = layout.metric, len(true_rows)
    out: dict = {"metric": metric, "n": n}
    if layout.format == "single":
        y_true, y_pred = [r[1] for r in true_rows], [g[0] for g in guess]
        out["accuracy"] = float(accuracy_score(y_true, y_pred))
        out["macro_f1"] = macro_f1_labels(y_true, y_pred)
        out["score"] = out[metric]
    elif layout.format == "set":
        out["score"] = mean_f1_sets(
            [r[1].split() for r in true_rows], [g[0].split() for g in guess]
        )
    elif layout.format == "onehot":
        for line, r in enumerate(true_rows, start=2):
            bad = [(c, v) for c, v in zip(cols[1:], r[1:], strict=True) if v not in ("0", "1")]
            if bad:
                raise FathomError(
                    f"{truth_name}, line {line}, column {bad[0][0]}: {bad[0][1]!r} is not 0 or 1"
                )
        y = np.array([[int(v) for v in r[1:]] for r in true_rows])
        try:
            s = np.array([[float(v) if v != "" else 0.0 for v in g] for g in guess])
        except ValueError as exc:
            raise FathomError(f"{sub_name}: a class column holds a non-number ({exc})") from None
        out["score"] = mean_column_auc(y, s)
    else:
        out["score"] = map_at_k(
            [g[0].split(" ") for g in guess], [{r[1]} for r in true_rows], layout.k
        )
    return out


def format_score(result: dict) -> str:
    others = [k for k in ("accuracy", "macro_f1") if k in result and k != result["metric"]]
    extra = "".join(f"   {metric_label(k)} {result[k]:.4f}" for k in others)
    return f"{metric_label(result['metric'])} {result['score']:.4f}{extra}   ({result['n']} images)"


def write_tuned(path, tuning: dict, data_dir, ens: dict, overwrite=False) -> pd.DataFrame:
    """`fathom submit` for a train.csv competition: the ensemble's eval predictions (see
    `fathom.submit.ensemble_eval`) in the format, as tuned; validated, then written."""
    from fathom.data import open_dataset

    layout = open_dataset(data_dir).layout()
    if tuning["format"]["format"] != layout.format:
        raise FathomError(
            f"the tuning is for a {tuning['format']['format']} submission but {data_dir} wants "
            f"{layout.format} (tuned on another competition?)"
        )
    frame = make_frame(layout, ens["ids"], ens["scores"], ens["probs"], tuning)
    write_frame(path, frame, layout, ens["ids"], overwrite=overwrite)
    return frame


# --- which competition a submission file is for


def manifest_competition(submission) -> str | None:
    """The competition named by the manifest `fathom submit` wrote beside a submission."""
    manifest = Path(submission).with_suffix(".json")
    if not manifest.is_file():
        return None
    try:
        return fileio.read_json(manifest).get("competition") or None
    except (FathomError, AttributeError):
        return None


def csv_competition_for(submission, truth=None, comp=None):
    """The train.csv competition a submission is scored for: `comp` if given, else the one its
    manifest names, else the folder holding the truth's hidden/ folder; None if that is no
    train.csv competition (then the other formats' scorers apply)."""
    from fathom.data import open_dataset
    from fathom.data.csvtable import TRUTH_FILE, is_csv_competition

    candidates = [comp, manifest_competition(submission)]
    if truth is not None:
        t = Path(truth).resolve()
        if t.parent.name == TRUTH_FILE.parent.name:
            candidates.append(str(t.parent.parent))
    for c in candidates:
        if c and Path(c).is_dir() and is_csv_competition(Path(c)):
            return open_dataset(c).layout()
        if c and c is comp:
            ds = open_dataset(c)  # a folder of another kind: its own scorer
            return ds.layout() if ds.kind == "csv" else None
    return None


def score_file(submission, truth, layout: Layout) -> dict:
    from fathom.submission import read_submission

    sub, true = read_submission(submission), read_submission(truth)
    return score_frame(sub, true, layout, str(truth), str(submission))


def oof_metric(competition, probs, targets, fold) -> dict | None:
    """A train.csv competition's own metric over a run's OOF, overall and per fold (None for
    the other kinds). A ranked format with a new token is scored with the token inserted where
    OOF says, the cut chosen on the other folds (what `fathom tune` estimates)."""
    from fathom.data import open_dataset
    from fathom.data.csvtable import is_csv_competition
    from fathom.metrics import matrix_metric

    if not competition or not Path(competition).is_dir() or not is_csv_competition(competition):
        return None
    layout = open_dataset(competition).layout()
    probs, targets, fold = np.asarray(probs), np.asarray(targets), np.asarray(fold)
    if layout.format == "ranked" and layout.new_label and len(np.unique(fold)) > 1:
        value = tune_new_token(probs, targets, fold, layout.k)["map_held_out"]
        return {"metric": layout.metric, "value": value}
    metric = matrix_metric(layout.metric)
    per_fold = {
        int(f): float(metric(probs[fold == f], targets[fold == f])) for f in np.unique(fold)
    }
    return {"metric": layout.metric, "value": float(metric(probs, targets)), "per_fold": per_fold}
