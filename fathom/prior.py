"""`fathom prior`: the frequency prior, which ranks every image's categories by how often they
occur in training.

It is the floor every model must beat: on FathomNet it already scores well on MAP@20 because
one category is in 44% of training images. It comes in three forms: in-sample for the eval
images (`prior_probabilities`, a baseline submission), out of fold (`fold_prior`: each fold's
rows get the other folds' frequencies, so it can join an ensemble or score a CV without seeing
its own rows), and as logits (`prior_logits`) for the osd scorers that read logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fathom.data.coco import label_matrix


def category_frequency(train: pd.DataFrame, category_ids) -> np.ndarray:
    """Share of training images that hold each category (columns follow `category_ids`)."""
    return label_matrix(train["categories"], category_ids).mean(axis=0)


def prior_probabilities(train: pd.DataFrame, n_images: int, category_ids) -> np.ndarray:
    """The same frequency row for every image, as a probability matrix."""
    return np.tile(category_frequency(train, category_ids), (n_images, 1))


def fold_prior(
    targets: np.ndarray, fold: np.ndarray, always_trained: np.ndarray | None = None
) -> np.ndarray:
    """The frequency prior as OOF predictions: each fold's rows get the category frequencies
    of the images its model trained on: the other folds' rows, plus `always_trained` (the
    targets of labelled images that no fold validates, e.g. a folder dataset's train/ when its
    val/ is the one validation split)."""
    targets = np.asarray(targets, dtype=np.float64)
    extra = np.zeros((0, targets.shape[1])) if always_trained is None else always_trained
    out = np.zeros_like(targets)
    for f in np.unique(fold):
        held = fold == f
        trained = np.concatenate([targets[~held], np.asarray(extra, dtype=np.float64)])
        if not len(trained):
            raise ValueError(f"fold {f}: no training rows to take frequencies from")
        out[held] = trained.mean(axis=0)
    return out


def prior_logits(probs: np.ndarray) -> np.ndarray:
    """Logits of prior probabilities (clipped: a never-seen category has frequency 0)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def write_prior(data_dir, out, overwrite: bool = False) -> Path:
    """The prior's submission for a dataset of any kind: multi-label, categories ranked by
    frequency with a constant osd (sAUC 0); single-label, the most frequent class everywhere;
    a train.csv competition, its format's trivial baseline (fathom/formats.py `prior_frame`)."""
    from fathom.data import open_dataset
    from fathom.submission import (
        make_label_submission,
        make_submission,
        write_label_submission,
        write_submission,
    )

    ds = open_dataset(data_dir)
    cats = ds.categories()
    train = ds.split("train", require_images=False, categories=cats)
    ev = ds.split("eval", require_images=False, categories=cats)
    if ds.kind == "csv":  # the format's trivial baseline, in the sample submission's format
        from fathom.formats import prior_frame, write_frame

        layout = ds.layout()
        ids = ev["id"].tolist()
        return write_frame(out, prior_frame(layout, train, ids), layout, ids, overwrite=overwrite)
    probs = prior_probabilities(train, len(ev), cats["id"])
    ids = ev["id"].tolist()
    if ds.task == "singlelabel":
        frame = make_label_submission(ids, probs, cats["name"].tolist())
        return write_label_submission(out, frame, ids, cats["name"], overwrite=overwrite)
    frame = make_submission(ids, probs, cats["id"], [0.5] * len(ev))
    return write_submission(out, frame, ids, cats["id"], overwrite=overwrite)
