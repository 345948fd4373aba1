from __future__ import annotations

import argparse

HELP = "write the frequency-prior baseline submission"
DESCRIPTION = """Write a submission that ranks every eval image's categories by how often they
occur in training, with a constant osd (which scores sAUC 0). It is the floor every model
has to beat. For a single-label folder dataset: the most frequent class for every test image
(`id,label`).

example:  fathom prior data/synth --out submissions/prior.csv"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("comp", help="competition folder (Kaggle layout) or folder dataset")
    p.add_argument(
        "--out",
        default="submissions/prior.csv",
        help="CSV to write (default submissions/prior.csv)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run(args: argparse.Namespace) -> int:
    from fathom.prior import write_prior

    print(f"wrote {write_prior(args.comp, args.out, args.overwrite)}")
    return 0
