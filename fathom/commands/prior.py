from __future__ import annotations

import argparse

HELP = "write the frequency-prior baseline submission"
DESCRIPTION = """Write a submission that ranks every eval image's categories by how often they
occur in training, with a constant osd (which scores sAUC 0). It is the floor every model
has to beat.

example:  fathom prior data/synth --out submissions/prior.csv"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("comp", help="competition folder (Kaggle layout)")
    p.add_argument(
        "--out",
        default="submissions/prior.csv",
        help="CSV to write (default submissions/prior.csv)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")


def write_prior(comp_dir, out, overwrite: bool = False):
    from fathom.data.coco import open_competition, read_categories, read_split
    from fathom.prior import prior_probabilities
    from fathom.submission import make_submission, write_submission

    comp = open_competition(comp_dir)
    cats = read_categories(comp)
    train = read_split(comp, "train", require_images=False, categories=cats)
    ev = read_split(comp, "eval", require_images=False, categories=cats)
    probs = prior_probabilities(train, len(ev), cats["id"])
    frame = make_submission(ev["id"].tolist(), probs, cats["id"], [0.5] * len(ev))
    return write_submission(out, frame, ev["id"], cats["id"], overwrite=overwrite)


def run(args: argparse.Namespace) -> int:
    path = write_prior(args.comp, args.out, args.overwrite)
    print(f"wrote {path}")
    return 0
