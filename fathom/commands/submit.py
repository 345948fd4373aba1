from __future__ import annotations

import argparse

HELP = "write submissions/<name>.csv and its manifest from a tuning file and eval predictions"
DESCRIPTION = """Combine the experiments' eval predictions as TUNE (from `fathom tune`) says,
score every eval image's osd with the chosen scorer, validate the CSV the way the scorer
reads it, and write OUT_DIR/<name>.csv plus OUT_DIR/<name>.json (the experiments and
checkpoints used with their SHA-256, ensemble weights, thresholds, osd scorer, CV MAP@20,
estimated sAUC, time). Never replaces an existing submission unless --overwrite.
For a single-label folder dataset it writes `id,label` (each test image's top class).

Eval predictions are read from runs/<exp>/eval.npz (`fathom oof` writes them); with
--predictions DIR, from DIR/<exp>/eval.npz (`fathom predict` writes them there, e.g. on the
real test set inside a Kaggle kernel).

example:  fathom submit runs/tune-ab.json --name ab-v1"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tune", help="JSON written by `fathom tune`")
    p.add_argument(
        "--name", required=True, help="submission name: writes <out-dir>/<name>.csv and .json"
    )
    p.add_argument("--comp", help="competition folder (default: the one the tuning used)")
    p.add_argument("--predictions", help="folder holding <exp>/eval.npz (default: each run folder)")
    p.add_argument("--osd", help="override the tuned osd scorer")
    p.add_argument(
        "--out-dir", default="submissions", help="folder for the files (default submissions)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing submission of that name"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.runs import read_tuning
    from fathom.submit import make, summary

    csv_path, manifest = make(
        read_tuning(args.tune),
        args.name,
        args.comp,
        args.predictions,
        args.osd,
        args.out_dir,
        args.overwrite,
    )
    print(summary(csv_path, manifest))
    return 0
