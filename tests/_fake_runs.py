"""Run folders in the engine's contract, built from a synthetic competition's labels.

Predictions are constructed, not trained: a model of quality q puts logit mass on the true
categories; categories in `holdout` were never learned (no signal, no feature direction).
The eval side reads the hidden truth, which only a test may do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio
from fathom.data.coco import label_matrix, open_competition, read_categories, read_split
from fathom.knn import BANK_FILE, write_bank
from fathom.synth.fathomnet import TRUTH_FILE, SynthConfig, generate


def cli(*args) -> int:
    """`fathom ARGS...` in-process: its exit code (argparse's SystemExit included), for the
    tests that drive the commands over these runs."""
    from fathom.cli import main

    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


# the competition the tuning tests build their fake runs on
SMALL = SynthConfig(n_train=150, n_eval=60, width=48, height=36, seed=5)


def small_competition(root) -> Path:
    return generate(Path(root) / "comp", SMALL, progress=False)


def _outputs(y, quality, embed, rng, deep=None):
    logits = -4.0 + quality * 6.0 * y + rng.normal(0, 1.0, y.shape)
    # like pooled CNN features: a large component every in-sample image shares, plus its organisms
    feats = 3.0 + y @ embed + 0.3 * rng.normal(0, 1, (len(y), embed.shape[1]))
    if deep is not None:  # deep eval images: another background moves every feature the same way
        feats = feats + deep[:, None] * 3.0 * np.sin(np.arange(embed.shape[1]))
    return 1 / (1 + np.exp(-logits)), logits, feats


def make_run(root, comp_dir, name, quality=0.8, seed=0, holdout=(), n_folds=3, dim=32):
    root = Path(root) / name
    comp = open_competition(comp_dir)
    cats = read_categories(comp)
    cat_ids = cats["id"].to_numpy()
    train = read_split(comp, "train", require_images=False, categories=cats)
    truth = pd.read_csv(Path(comp_dir) / TRUTH_FILE, dtype=str, keep_default_na=False)
    ev = read_split(comp, "eval", require_images=False, categories=cats)
    truth = truth.set_index("id").loc[ev["id"]]
    rng = np.random.default_rng(seed)
    embed = rng.normal(0, 1, (len(cat_ids), dim))
    y_all = label_matrix(train["categories"], cat_ids)
    learned = (y_all.sum(axis=0) > 0) & ~np.isin(
        cat_ids, holdout
    )  # never-seen ones are not learned
    embed[~learned] = 0.0

    y = y_all * learned
    fold = np.arange(len(train)) % n_folds
    probs, logits, feats = _outputs(y, quality, embed, rng)
    ids = train["id"].to_numpy().astype(str)
    fileio.save_npz(
        root / "oof.npz",
        ids=ids,
        fold=fold,
        probs=probs.astype(np.float32),
        logits=logits.astype(np.float32),
        features=feats.astype(np.float32),
        category_ids=cat_ids,
    )
    y_ev = (
        label_matrix([tuple(int(c) for c in s.split()) for s in truth["categories"]], cat_ids)
        * learned
    )
    deep = truth["osd"].astype(int).to_numpy()
    fp, fl, ff = zip(
        *[_outputs(y_ev, quality, embed, rng, deep=deep) for _ in range(n_folds)], strict=True
    )
    fp, fl, ff = np.stack(fp), np.stack(fl), np.stack(ff)
    fileio.save_npz(
        root / "eval.npz",
        ids=ev["id"].to_numpy().astype(str),
        probs=fp.mean(0),
        logits=fl.mean(0),
        fold_probs=fp,
        fold_logits=fl,
        fold_features=ff,
        category_ids=cat_ids,
        folds=np.arange(n_folds),
    )
    # each fold model's kNN bank: its features of the rows it trained on (the other folds')
    _, _, bank_feats = _outputs(y, quality, embed, rng)
    for k in range(n_folds):
        rows = fold != k
        write_bank(root / f"fold{k}" / BANK_FILE, ids[rows], bank_feats[rows], y_all[rows], cat_ids)
    fileio.write_json(
        root / "config.json",
        {
            "name": name,
            "competition": str(comp_dir),
            "holdout_categories": list(holdout),
            "model": "fake",
        },
    )
    fileio.write_json(root / "cv.json", {"map20": 0.0, "per_fold": {}, "n_images": len(ids)})
    for k in range(n_folds):
        (root / f"fold{k}").mkdir(parents=True, exist_ok=True)
        (root / f"fold{k}" / "best.pt").write_bytes(f"{name}-{k}".encode())
        hist = pd.DataFrame(
            {
                "epoch": [1, 2, 3],
                "train_loss": [0.9, 0.5, 0.3 + 0.01 * k],
                "val_loss": [1.0, 0.7, 0.6],
                "val_map20": [0.2, 0.4, 0.5 + 0.01 * k],
            }
        )
        fileio.write_csv(root / f"fold{k}" / "history.csv", hist)
    return root


def three_runs(root) -> dict:
    """A small competition with a good run, a weak one, and a run whose model never saw 20
    mid-frequency categories (the held-out-category run `fathom tune --holdout` reads)."""
    import json

    comp = small_competition(root)
    train = pd.read_csv(comp / "multilabel_classification" / "train.csv")
    counts = pd.Series([c for s in train["categories"] for c in json.loads(s)]).value_counts()
    holdout = tuple(int(c) for c in counts.index[5:25])
    runs = root / "runs"
    good = make_run(runs, comp, "good", quality=0.45, seed=1)
    weak = make_run(runs, comp, "weak", quality=0.2, seed=2)
    held = make_run(runs, comp, "held", quality=0.45, seed=3, holdout=holdout)
    return {"root": root, "comp": comp, "good": good, "weak": weak, "held": held}
