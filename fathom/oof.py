"""`fathom oof`: stitch a run's folds into one OOF matrix with its CV score (overall and per
fold, beside the out-of-fold frequency prior) and average the folds' eval predictions.

Pure functions over arrays, plus the file edge `write_oof`; the files are the run-folder
contract's (fathom/runs.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom import fileio
from fathom.errors import FathomError
from fathom.formats import oof_metric
from fathom.metrics import ap_at_k_matrix
from fathom.prior import fold_prior
from fathom.runs import (
    average_eval,
    file_sha256,
    fold_dirs,
    open_run,
    read_predictions,
    stitch_oof,
)


def cv_scores(probs: np.ndarray, targets: np.ndarray, fold: np.ndarray) -> dict:
    """MAP@20 over all OOF rows and per fold, beside the out-of-fold frequency prior's; for
    one-hot targets (a single-label run) also the accuracy."""
    ap = ap_at_k_matrix(probs, targets)
    per_fold = {int(k): float(ap[fold == k].mean()) for k in np.unique(fold)}
    prior = (
        float(ap_at_k_matrix(fold_prior(targets, fold), targets).mean())
        if len(np.unique(fold)) > 1
        else None
    )
    scores = {
        "map20": float(ap.mean()),
        "per_fold": per_fold,
        "n_images": int(len(ap)),
        "prior_map20": prior,
    }
    if len(targets) and (np.asarray(targets).sum(axis=1) == 1).all():
        hit = probs.argmax(axis=1) == np.asarray(targets).argmax(axis=1)
        scores["accuracy"] = float(hit.mean())
        scores["per_fold_accuracy"] = {
            int(k): float(hit[fold == k].mean()) for k in np.unique(fold)
        }
    return scores


def write_oof(run_dir: str | Path, allow_missing: bool = False) -> dict:
    """Write runs/<exp>/oof.npz, eval.npz and cv.json from the fold folders; return the CV.

    Folds the config promises (`n_folds`) but that have not finished are refused by name:
    stitching 4 of 5 folds would score a CV on 80% of the images and tune on it silently.
    `allow_missing` stitches what there is and records the missing folds in cv.json.
    """
    run = open_run(run_dir)
    dirs = fold_dirs(run.path)
    if not dirs:
        raise FathomError(f"{run.path}: no fold<k> folders (train the folds first)")
    unfinished = [k for k, d in dirs.items() if not (d / "oof.npz").is_file()]
    finished = [k for k in dirs if k not in unfinished]
    missing = sorted(set(run.missing_folds(done=finished)) | set(unfinished))
    if missing and not allow_missing:
        raise FathomError(
            f"{run.path}: fold(s) {', '.join(map(str, missing))} of {run.n_folds() or len(dirs)} "
            "have not finished (no oof.npz); train them, or pass --allow-missing-folds"
        )
    done = {k: d for k, d in dirs.items() if k not in unfinished}
    if not done:
        raise FathomError(f"{run.path}: no fold has finished (no fold<k>/oof.npz)")
    oof = stitch_oof({k: run.fold_oof(k) for k in done})
    scores = cv_scores(oof["probs"], oof["targets"], oof["fold"])
    scores["task"] = run.task  # which of the scores is the run's own metric
    own = oof_metric(run.config().get("competition"), oof["probs"], oof["targets"], oof["fold"])
    if own:  # a train.csv competition's own metric, beside MAP@20
        scores["competition_metric"] = own
    if missing:
        scores["missing_folds"] = missing
    # which fold files this stitch read, so that a fold trained again later is noticed
    # (Run.oof refuses a stale stitch)
    stitched = {
        "stitched_folds": np.asarray(list(done), dtype=np.int64),
        "stitched_sha256": np.asarray([file_sha256(d / "oof.npz") for d in done.values()]),
    }
    fileio.save_npz(run.path / "oof.npz", **oof, **stitched)
    with_eval = {k: d / "eval.npz" for k, d in done.items() if (d / "eval.npz").is_file()}
    if len(with_eval) == len(done):
        fileio.save_npz(
            run.path / "eval.npz",
            **average_eval({k: read_predictions(p) for k, p in with_eval.items()}),
        )
    fileio.write_json(run.path / "cv.json", scores)
    return scores
