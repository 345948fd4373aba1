"""Stitch a run's folds: one OOF matrix with its CV MAP@20 (overall and per fold), and the
folds' eval predictions averaged. Pure functions over arrays, plus the file edges."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fathom import fileio
from fathom.engine.predict import read_predictions
from fathom.errors import FathomError
from fathom.metrics import ap_at_k_matrix


def fold_dirs(run_dir: Path) -> dict[int, Path]:
    """fold<k> folders of a run, by k."""
    found = {}
    for d in Path(run_dir).iterdir() if Path(run_dir).is_dir() else ():
        m = re.fullmatch(r"fold(\d+)", d.name)
        if m and d.is_dir():
            found[int(m.group(1))] = d
    return dict(sorted(found.items()))


def prior_oof_probs(targets: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The frequency prior, out of fold: each row gets the category frequencies of the other
    folds' images (the floor a model's CV score has to beat)."""
    probs = np.empty_like(targets, dtype=np.float32)
    for k in np.unique(fold):
        probs[fold == k] = targets[fold != k].mean(axis=0)
    return probs


def cv_scores(probs: np.ndarray, targets: np.ndarray, fold: np.ndarray) -> dict:
    """MAP@20 over all OOF rows and per fold, beside the out-of-fold frequency prior's."""
    ap = ap_at_k_matrix(probs, targets)
    per_fold = {int(k): float(ap[fold == k].mean()) for k in np.unique(fold)}
    prior = (
        float(ap_at_k_matrix(prior_oof_probs(targets, fold), targets).mean())
        if len(np.unique(fold)) > 1
        else None
    )
    return {
        "map20": float(ap.mean()),
        "per_fold": per_fold,
        "n_images": int(len(ap)),
        "prior_map20": prior,
    }


def stitch_oof(folds: dict[int, dict]) -> dict[str, np.ndarray]:
    """Concatenate the folds' oof.npz contents (each with a `targets` matrix)."""
    parts = list(folds.values())
    cats = parts[0]["category_ids"]
    for k, p in folds.items():
        if not np.array_equal(p["category_ids"], cats):
            raise FathomError(
                f"fold {k}: its category columns differ from fold {next(iter(folds))}'s"
            )
    out = {
        key: np.concatenate([p[key] for p in parts])
        for key in ("ids", "probs", "logits", "features", "targets")
    }
    out["fold"] = np.concatenate(
        [np.full(len(p["ids"]), k, dtype=np.int64) for k, p in folds.items()]
    )
    out["category_ids"] = cats
    if len(set(out["ids"].tolist())) != len(out["ids"]):
        raise FathomError(
            "an image is in the validation part of two folds (were the folds changed mid-run?)"
        )
    return out


def average_eval(folds: dict[int, dict]) -> dict[str, np.ndarray]:
    """The folds' eval predictions stacked (fold_*) and averaged (probs, logits)."""
    parts = list(folds.values())
    ids = parts[0]["ids"]
    for k, p in folds.items():
        if not np.array_equal(p["ids"], ids):
            raise FathomError(f"fold {k}: its eval ids differ from fold {next(iter(folds))}'s")
    return {
        "ids": ids,
        "probs": np.mean([p["probs"] for p in parts], axis=0).astype(np.float32),
        "logits": np.mean([p["logits"] for p in parts], axis=0).astype(np.float32),
        "fold_probs": np.stack([p["probs"] for p in parts]).astype(np.float32),
        "fold_logits": np.stack([p["logits"] for p in parts]).astype(np.float32),
        "fold_features": np.stack([p["features"] for p in parts]).astype(np.float32),
        "category_ids": parts[0]["category_ids"],
        "folds": np.asarray(list(folds), dtype=np.int64),
    }


def write_oof(run_dir: str | Path) -> dict:
    """Write runs/<exp>/oof.npz, eval.npz and cv.json from the fold folders; return the CV scores."""
    run_dir = Path(run_dir)
    dirs = fold_dirs(run_dir)
    if not dirs:
        raise FathomError(f"{run_dir}: no fold<k> folders (train the folds first)")
    missing = [d for d in dirs.values() if not (d / "oof.npz").is_file()]
    if missing:
        raise FathomError(f"{missing[0]}: no oof.npz (this fold's training has not finished)")
    oof = stitch_oof({k: read_predictions(d / "oof.npz") for k, d in dirs.items()})
    scores = cv_scores(oof["probs"], oof["targets"], oof["fold"])
    fileio.save_npz(run_dir / "oof.npz", **oof)
    with_eval = {k: d / "eval.npz" for k, d in dirs.items() if (d / "eval.npz").is_file()}
    if len(with_eval) == len(dirs):
        fileio.save_npz(
            run_dir / "eval.npz",
            **average_eval({k: read_predictions(p) for k, p in with_eval.items()}),
        )
    fileio.write_json(run_dir / "cv.json", scores)
    return scores
