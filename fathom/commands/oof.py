from __future__ import annotations

import argparse

HELP = "stitch a run's folds into one OOF matrix with its CV MAP@20, and average their eval predictions"
DESCRIPTION = """Read runs/<exp>/fold<k>/{oof,eval}.npz and write runs/<exp>/oof.npz (every training
image once: ids, fold, probs, logits, features, targets, category_ids), runs/<exp>/eval.npz (the
folds' eval predictions: probs and logits averaged, fold_probs, fold_logits, fold_features) and
runs/<exp>/cv.json (MAP@20 overall and per fold). Folds that the config's n_folds promises but
that have not finished are refused by name (--allow-missing-folds stitches the others).

example:  fathom oof runs/default"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, e.g. runs/default")
    p.add_argument("--json", action="store_true", help="print cv.json instead of a table")
    p.add_argument(
        "--allow-missing-folds",
        action="store_true",
        help="stitch the finished folds even if the config's n_folds promises more "
        "(e.g. a held-out-category run trained on one fold); cv.json records the missing ones",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from fathom.oof import write_oof

    scores = write_oof(args.run, args.allow_missing_folds)
    if args.json:
        print(json.dumps(scores))
        return 0
    # a single-label run is scored by its accuracy (its MAP@20, a reciprocal rank, stays in
    # cv.json)
    single = scores.get("task") == "singlelabel" and "accuracy" in scores
    name, key, overall = (
        ("accuracy", "per_fold_accuracy", "accuracy") if single else ("MAP@20", "per_fold", "map20")
    )
    for k, v in scores[key].items():
        print(f"fold {k}: {name} {v:.4f}")
    print(
        f"CV {name} {scores[overall]:.4f} over {scores['n_images']} images  (wrote {args.run}/oof.npz, eval.npz, cv.json)"
    )
    if scores.get("competition_metric"):
        own = scores["competition_metric"]
        print(f"CV {own['metric']} {own['value']:.4f} (the competition's metric)")
    if scores.get("missing_folds"):
        print(
            f"folds {', '.join(map(str, scores['missing_folds']))} missing: this CV covers the others only"
        )
    if scores["prior_map20"] is not None and not single:
        print(
            f"frequency prior, out of fold (ranked by the other folds' frequencies): MAP@20 {scores['prior_map20']:.4f}"
        )
    return 0
