from __future__ import annotations

import argparse

HELP = "download and unzip the competition files"
DESCRIPTION = "Download the competition's archive through KaggleApi, unzip it (no member may land outside OUT) and check the expected files.\n\nexample:  fathom kaggle download --out data/fathomnet"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    add_slug_argument(p)
    p.add_argument(
        "--out",
        default="data/fathomnet",
        help="competition folder to fill (default data/fathomnet)",
    )
    p.add_argument(
        "--force", action="store_true", help="download again even if the files are there"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle.competition import download_competition

    download_competition(kaggle_api.connect(), args.competition, args.out, args.force)
    return 0
