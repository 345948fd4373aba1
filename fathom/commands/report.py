from __future__ import annotations

import argparse

HELP = "an HTML page of plots about one or more runs (and their tuning)"
DESCRIPTION = """Write OUT/index.html with PNG plots: a summary (date, dataset, the runs and their
settings, the ensemble and osd scorer --tune chose and why), category frequency, sample
training images, training curves per fold, per-category OOF average precision against
frequency, a model comparison (with the ensembles from --tune), osd score histograms for in-
and out-of-sample images (the chosen scorer's alone, then every scorer's, from the
held-out-category runs named in --tune) with the images scored most out-of-sample, the top
confusions between supercategories and the worst mistakes (thumbnails in OUT/thumbs/). Open
it in a browser. Runs on a single-label folder dataset are scored by accuracy, with class
confusions.

example:  fathom report runs/resnet18 runs/effb0 --tune runs/tune-ab.json --out runs/report"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="+", help="run folders (each with oof.npz, cv.json, fold<k>/history.csv)"
    )
    p.add_argument(
        "--tune", help="tuning file from `fathom tune`: adds ensembles and osd histograms"
    )
    p.add_argument(
        "--comp", help="competition folder (default: from --tune or the first run's config)"
    )
    p.add_argument(
        "--out",
        default="runs/report",
        help="folder for index.html and the PNGs (default runs/report)",
    )


def run(args: argparse.Namespace) -> int:
    from fathom.report import build_report

    path = build_report(args.runs, args.out, args.tune, args.comp)
    print(f"wrote {path} (open it in a browser)")
    return 0
