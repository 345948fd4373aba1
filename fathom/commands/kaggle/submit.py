from __future__ import annotations

import argparse

HELP = "validate a submission and upload it"
DESCRIPTION = "Validate FILE against COMP's eval set, then submit it with the CV score from FILE's manifest (FILE with .json) in the message.\n\nexample:  fathom kaggle submit submissions/blend.csv --comp data/fathomnet --dry-run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    p.add_argument("file", help="submission CSV (its manifest is the same name with .json)")
    p.add_argument(
        "--comp",
        help="competition folder to validate against (default: the manifest's `competition`)",
    )
    add_slug_argument(p)
    p.add_argument("-m", "--message", help="text added to the submission message")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and show what would be sent; send nothing"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import competition as kaggle_data

    comp = kaggle_data.submission_comp_dir(args.file, args.comp)
    api = None if args.dry_run else kaggle_api.connect()
    kaggle_data.submit(api, args.file, comp, args.competition, args.message, args.dry_run)
    return 0
