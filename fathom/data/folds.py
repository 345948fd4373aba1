"""Multilabel-stratified K-fold assignments, written once as data (`folds/<name>.csv`: id,fold)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import KFold

from fathom.data.coco import label_matrix
from fathom.errors import FathomError


def assign_folds(
    table: pd.DataFrame, n_splits: int = 5, seed: int = 42, method: str = "mlskf"
) -> pd.DataFrame:
    """`id,fold` for every row of a training table (needs `id` and `categories`)."""
    if n_splits < 2:
        raise FathomError("--n-splits must be at least 2")
    if len(table) < n_splits:
        raise FathomError(f"{len(table)} images cannot fill {n_splits} folds")
    ids = table["id"].to_numpy()
    if method == "mlskf":
        cats = sorted({c for row in table["categories"] for c in row})
        y = label_matrix(table["categories"], cats)
        splitter = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(ids)), y)
    elif method == "kfold":
        splits = KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(ids)
    else:
        raise FathomError(f"unknown fold method {method!r}; choose mlskf or kfold")
    fold = np.full(len(ids), -1, dtype=int)
    for k, (_, val_idx) in enumerate(splits):
        fold[val_idx] = k
    return pd.DataFrame({"id": ids, "fold": fold})


def fold_spread(table: pd.DataFrame, folds: pd.DataFrame, min_count: int | None = None) -> dict:
    """How evenly each category's images spread over the folds.

    For each category with at least `min_count` images (default: one per fold), its share of
    images in each fold; a perfect split puts 1/K in each. Reports the mean (over categories)
    of the standard deviation of those shares, the mean largest deviation from 1/K, and the
    share of categories missing from at least one fold's validation set.
    """
    merged = table[["id", "categories"]].merge(folds, on="id", validate="one_to_one")
    k = int(merged["fold"].max()) + 1
    min_count = k if min_count is None else min_count
    cats = sorted({c for row in merged["categories"] for c in row})
    y = label_matrix(merged["categories"], cats)
    per_fold = np.stack([y[merged["fold"].to_numpy() == f].sum(axis=0) for f in range(k)], axis=1)
    totals = per_fold.sum(axis=1)
    keep = totals >= min_count
    shares = per_fold[keep] / totals[keep, None]
    return {
        "categories": int(keep.sum()),
        "share_std": float(shares.std(axis=1).mean()),
        "max_deviation": float(np.abs(shares - 1.0 / k).max(axis=1).mean()),
        "missing_from_a_fold": float((per_fold[keep] == 0).any(axis=1).mean()),
        "fold_sizes": [int((merged["fold"] == f).sum()) for f in range(k)],
    }


def spread_report(
    table: pd.DataFrame, folds: pd.DataFrame, n_splits: int, seed: int
) -> pd.DataFrame:
    """The spread of `folds` beside a plain shuffled KFold with the same seed."""
    plain = assign_folds(table, n_splits, seed, method="kfold")
    rows = []
    for name, f in (("MultilabelStratifiedKFold", folds), ("KFold (shuffled)", plain)):
        s = fold_spread(table, f)
        rows.append(
            {
                "scheme": name,
                "categories >= K images": s["categories"],
                "mean std of fold shares": round(s["share_std"], 4),
                "mean max |share - 1/K|": round(s["max_deviation"], 4),
                "share missing from a fold": round(s["missing_from_a_fold"], 4),
                "fold sizes": " ".join(map(str, s["fold_sizes"])),
            }
        )
    return pd.DataFrame(rows)


def read_folds(path, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read `id,fold`; with a table, check every image has exactly one fold."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: no such folds file (`fathom folds` writes it)")
    folds = pd.read_csv(path, dtype={"id": str})
    if list(folds.columns) != ["id", "fold"]:
        raise FathomError(f"{path}: header must be `id,fold`")
    if folds["id"].duplicated().any():
        raise FathomError(
            f"{path}: id {folds['id'][folds['id'].duplicated()].iloc[0]} has two folds"
        )
    if table is not None:
        missing = set(table["id"]) - set(folds["id"])
        if missing:
            raise FathomError(
                f"{path}: {len(missing)} training image(s) have no fold, e.g. {sorted(missing)[0]}"
            )
    return folds
