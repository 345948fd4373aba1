from __future__ import annotations

import argparse

HELP = "ensemble weights, label-set thresholds and the osd scorer, tuned on OOF predictions"
DESCRIPTION = """Tune on the out-of-fold predictions of one or more experiments (run folders that
`fathom oof` has finished) and write the choices to a JSON file that `fathom submit` reads.

- Ensemble: the plain mean, rank averaging and fitted weights (coordinate search for the best
  OOF MAP@20), compared on MAP@20. Fitted weights are scored fold-held-out (fitted on the
  other folds' rows, scored on the held-out fold), never on the rows that chose them.
- --knn: every run also joins as a kNN member: its own features read as a nearest-neighbour
  classifier over the images each fold model trained on (the banks training writes), which
  ranks rare categories far better than a sigmoid head; the temperature is chosen per run,
  fold-held-out.
- Label sets: a global threshold and per-category thresholds that maximise the per-image F1
  of the predicted label sets, also scored fold-held-out, reported beside MAP@20.
- osd: every out-of-sample scorer is scored by sAUC on the OOF of HOLDOUT runs (trained with
  `holdout_categories`: OOF images holding one are the unseen positives); the best is chosen.
  Without --holdout, name the scorer with --osd (its sAUC is then unknown). The estimate
  recorded for a chosen scorer is measured on held-out rows that did not choose it.
- A single-label folder dataset is tuned on accuracy (ensemble only: no label sets, no osd).

example:  fathom tune runs/resnet18 runs/effb0 --holdout runs/resnet18-holdout --out runs/tune-ab.json
example:  fathom tune runs/effb0 --knn --prior --holdout runs/effb0-holdout"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiments", nargs="+", help="run folders to ensemble (each with oof.npz)")
    p.add_argument(
        "--holdout", nargs="*", default=[], help="run folders trained with holdout_categories"
    )
    p.add_argument(
        "--comp", help="competition folder (default: the first run's config `competition`)"
    )
    p.add_argument("--osd", help="use this osd scorer instead of the best simulated one")
    p.add_argument(
        "--prior",
        action="store_true",
        help="let the frequency prior join the ensemble as a member (its weight is fitted too)",
    )
    p.add_argument(
        "--knn",
        action="store_true",
        help="every run also joins as a kNN member on its own features (see above)",
    )
    p.add_argument(
        "--knn-only", action="store_true", help="the runs' kNN members alone, without the runs"
    )
    p.add_argument("--out", default="runs/tune.json", help="JSON to write (default runs/tune.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.errors import FathomError
    from fathom.tune import format_tuning, tune_runs, write_tuning

    if Path(args.out).exists() and not args.overwrite:  # before the work, not after
        raise FathomError(f"{args.out}: already exists (pass --overwrite, or choose another --out)")
    result = tune_runs(
        args.experiments,
        args.holdout,
        args.comp,
        args.osd,
        args.prior,
        "only" if args.knn_only else args.knn,
    )
    print(format_tuning(result))
    print(f"\nwrote {write_tuning(args.out, result, overwrite=True)}")
    return 0
