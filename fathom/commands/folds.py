from __future__ import annotations

import argparse

HELP = "write multilabel-stratified K-fold assignments (folds/<name>.csv)"
DESCRIPTION = """Assign every training image of the competition COMP to one of K folds with
iterstrat's MultilabelStratifiedKFold (shuffle=True, random_state=SEED), write them to
OUT_DIR/<name>.csv as `id,fold`, and print how evenly each category spreads over the
folds, beside a plain shuffled KFold with the same seed.

For a single-label folder dataset (COMP/train/<class>/...) with no val/ folder it writes
scikit-learn's StratifiedKFold instead (default name skf<K>); a dataset with a val/ folder
needs no folds, training validates on val/.

example:  fathom folds data/synth --n-splits 5 --seed 42"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("comp", help="competition folder (Kaggle layout)")
    p.add_argument("--n-splits", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--name", help="file name without .csv (default mlskf<K>)")
    p.add_argument("--out-dir", default="folds", help="folder for fold files (default folds)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folds file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom import fileio
    from fathom.data.coco import open_competition, read_split
    from fathom.data.folds import assign_folds, spread_report
    from fathom.data.imagefolder import is_folder_dataset
    from fathom.errors import FathomError

    if is_folder_dataset(args.comp):
        return _folder_folds(args)
    path = Path(args.out_dir) / f"{args.name or f'mlskf{args.n_splits}'}.csv"
    if path.exists() and not args.overwrite:
        raise FathomError(
            f"{path}: already exists (runs may depend on it; pass --overwrite to replace)"
        )
    table = read_split(open_competition(args.comp), "train", require_images=False)
    folds = assign_folds(table, args.n_splits, args.seed)
    fileio.write_csv(path, folds)
    print(f"wrote {path}: {len(folds)} images in {args.n_splits} folds (seed {args.seed})")
    print(spread_report(table, folds, args.n_splits, args.seed).to_string(index=False))
    return 0


def _folder_folds(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from fathom import fileio
    from fathom.data.folds import assign_folds, fold_spread
    from fathom.data.imagefolder import open_folder, read_folder_split, stratified_folds
    from fathom.errors import FathomError

    ds = open_folder(args.comp)
    if ds.val_dir is not None:
        raise FathomError(
            f"{ds.val_dir}: the dataset has its own validation folder; training validates on it, no folds needed"
        )
    path = Path(args.out_dir) / f"{args.name or f'skf{args.n_splits}'}.csv"
    if path.exists() and not args.overwrite:
        raise FathomError(
            f"{path}: already exists (runs may depend on it; pass --overwrite to replace)"
        )
    table = read_folder_split(ds, "train")
    folds = stratified_folds(table, args.n_splits, args.seed)
    fileio.write_csv(path, folds)
    print(
        f"wrote {path}: {len(folds)} images in {args.n_splits} stratified folds (seed {args.seed})"
    )
    rows = []
    for name, f in (
        ("StratifiedKFold", folds),
        ("KFold (shuffled)", assign_folds(table, args.n_splits, args.seed, method="kfold")),
    ):
        s = fold_spread(table, f)
        rows.append(
            {
                "scheme": name,
                "mean max |class share - 1/K|": round(s["max_deviation"], 4),
                "classes missing from a fold": round(s["missing_from_a_fold"], 4),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    return 0
