from __future__ import annotations

import argparse

HELP = "write stratified K-fold assignments (folds/<name>.csv)"
DESCRIPTION = """Assign every training image of DATA to one of K folds and write them to
OUT_DIR/<name>.csv as `id,fold`, then print how evenly each category spreads over the folds,
beside a plain shuffled KFold with the same seed.

A Kaggle-layout competition gets iterstrat's MultilabelStratifiedKFold (shuffle=True,
random_state=SEED; default name mlskf<K>). A single-label folder dataset (DATA/train/<class>/...)
with no val/ folder gets scikit-learn's StratifiedKFold (default name skf<K>); one with a val/
folder needs no folds: training validates on val/.

example:  fathom folds data/synth --n-splits 5 --seed 42"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("comp", help="competition folder (Kaggle layout) or folder dataset")
    p.add_argument("--n-splits", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--name", help="file name without .csv (default mlskf<K> or skf<K>)")
    p.add_argument("--out-dir", default="folds", help="folder for fold files (default folds)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folds file")


def run(args: argparse.Namespace) -> int:
    from fathom.data.folds import write_folds

    path, folds, report = write_folds(
        args.comp, args.n_splits, args.seed, args.out_dir, args.name, args.overwrite
    )
    print(f"wrote {path}: {len(folds)} images in {args.n_splits} folds (seed {args.seed})")
    print(report.to_string(index=False))
    return 0
