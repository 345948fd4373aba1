from __future__ import annotations

import argparse

HELP = "stitch a run's folds into one OOF matrix with its CV MAP@20, and average their eval predictions"
DESCRIPTION = """Read runs/<exp>/fold<k>/{oof,eval}.npz and write runs/<exp>/oof.npz (every training
image once: ids, fold, probs, logits, features, targets, category_ids), runs/<exp>/eval.npz (the
folds' eval predictions: probs and logits averaged, fold_probs, fold_logits, fold_features) and
runs/<exp>/cv.json (MAP@20 overall and per fold).

example:  fathom oof runs/default"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, e.g. runs/default")
    p.add_argument("--json", action="store_true", help="print cv.json instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from fathom.oof import write_oof

    scores = write_oof(args.run)
    if args.json:
        print(json.dumps(scores))
        return 0
    for k, v in scores["per_fold"].items():
        print(f"fold {k}: MAP@20 {v:.4f}")
    print(
        f"CV MAP@20 {scores['map20']:.4f} over {scores['n_images']} images  (wrote {args.run}/oof.npz, eval.npz, cv.json)"
    )
    if scores["prior_map20"] is not None:
        print(
            f"frequency prior, out of fold (ranked by the other folds' frequencies): MAP@20 {scores['prior_map20']:.4f}"
        )
    return 0
