"""`fathom folds`: K-fold assignments, written once as data (`folds/<name>.csv`: id,fold).

Multi-label competitions get iterstrat's MultilabelStratifiedKFold; single-label folder
datasets scikit-learn's StratifiedKFold. Either comes with a spread report beside a plain
shuffled KFold of the same seed, so the gain of stratifying is visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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
        MultilabelStratifiedKFold = _iterstrat_splitter()
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


def _iterstrat_splitter():
    """iterstrat's MultilabelStratifiedKFold, imported here and only here: every other stage
    (predict in a Kaggle kernel above all) must run where iterative-stratification is missing
    (Kaggle's image has no such package)."""
    try:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    except ImportError:
        raise FathomError(
            "multilabel folds need iterative-stratification: `pip install iterative-stratification`"
        ) from None
    return MultilabelStratifiedKFold


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
    table: pd.DataFrame,
    folds: pd.DataFrame,
    n_splits: int,
    seed: int,
    scheme: str = "MultilabelStratifiedKFold",
) -> pd.DataFrame:
    """The spread of `folds` beside a plain shuffled KFold with the same seed."""
    plain = assign_folds(table, n_splits, seed, method="kfold")
    rows = []
    for name, f in ((scheme, folds), ("KFold (shuffled)", plain)):
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


def stratified_folds(table: pd.DataFrame, n_splits: int = 5, seed: int = 42) -> pd.DataFrame:
    """`id,fold` from scikit-learn's StratifiedKFold (shuffled): each class spread evenly."""
    from sklearn.model_selection import StratifiedKFold

    from fathom.data.imagefolder import labels_of

    if n_splits < 2:
        raise FathomError("--n-splits must be at least 2")
    y = labels_of(table)
    counts = np.bincount(y)
    small = np.flatnonzero((counts > 0) & (counts < n_splits))
    if len(small):
        raise FathomError(
            f"class {int(small[0])} has {int(counts[small[0]])} image(s), fewer than the {n_splits} folds"
        )
    fold = np.empty(len(table), dtype=int)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[val_idx] = k
    return pd.DataFrame({"id": table["id"].to_numpy(), "fold": fold})


def write_folds(
    data_dir, n_splits: int, seed: int, out_dir="folds", name=None, overwrite: bool = False
):
    """Assign and write the folds of a dataset of either kind; return (path, folds, report)."""
    from pathlib import Path

    from fathom import fileio
    from fathom.data import open_dataset

    ds = open_dataset(data_dir)
    if ds.kind == "folder":
        from fathom.data.imagefolder import open_folder, read_folder_split

        folder = open_folder(ds.root)
        if folder.val_dir is not None:
            raise FathomError(
                f"{folder.val_dir}: the dataset has its own validation folder; training "
                "validates on it, no folds needed"
            )
        table = read_folder_split(folder, "train")
        default, scheme = f"skf{n_splits}", "StratifiedKFold"
    elif ds.kind == "csv" and ds.task == "singlelabel":  # single labels, one-hot rows of one 1
        table = ds.split("train", require_images=False)
        default, scheme = f"skf{n_splits}", "StratifiedKFold"
    else:
        table = ds.split("train", require_images=False)
        default, scheme = f"mlskf{n_splits}", "MultilabelStratifiedKFold"
    path = Path(out_dir) / f"{fileio.plain_name(name, '--name') if name else default}.csv"
    if path.exists() and not overwrite:
        raise FathomError(
            f"{path}: already exists (runs may depend on it; pass --overwrite to replace)"
        )
    folds = (
        stratified_folds(table, n_splits, seed)
        if scheme == "StratifiedKFold"
        else assign_folds(table, n_splits, seed)
    )
    fileio.write_csv(path, folds)
    return path, folds, spread_report(table, folds, n_splits, seed, scheme)


def read_folds(path, table: pd.DataFrame | None = None, n_folds: int | None = None) -> pd.DataFrame:
    """Read `id,fold`. Folds are integers 0..K-1 (-1: trains in every fold, never validated);
    with `n_folds`, a fold at or past it is refused (its images would never be validated);
    with a table, every image needs exactly one fold and every id must be an image of it."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: no such folds file (`fathom folds` writes it)")
    try:
        folds = pd.read_csv(path, dtype={"id": str, "fold": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FathomError(f"{path}: not a CSV file ({str(exc).splitlines()[0]})") from None
    if list(folds.columns) != ["id", "fold"]:
        raise FathomError(f"{path}: header must be `id,fold`")
    bad = ~folds["fold"].str.strip().str.fullmatch(r"-?\d+")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FathomError(
            f"{path}, line {i + 2}: fold {folds['fold'].iloc[i]!r} is not a whole number"
        )
    folds["fold"] = folds["fold"].astype(int)
    if (folds["fold"] < -1).any():
        i = int(np.flatnonzero((folds["fold"] < -1).to_numpy())[0])
        raise FathomError(f"{path}, line {i + 2}: fold {folds['fold'].iloc[i]} is below -1")
    if n_folds is not None and (folds["fold"] >= n_folds).any():
        over = sorted(set(folds["fold"][folds["fold"] >= n_folds]))
        raise FathomError(
            f"{path}: holds fold(s) {', '.join(map(str, over))} but n_folds is {n_folds}: "
            f"their images would never be validated (set n_folds={max(over) + 1})"
        )
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
        unknown = set(folds["id"]) - set(table["id"])
        if unknown:
            raise FathomError(
                f"{path}: {len(unknown)} id(s) are not training images of this dataset, "
                f"e.g. {sorted(unknown)[0]} (a folds file of another competition?)"
            )
    return folds
