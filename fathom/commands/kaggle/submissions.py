from __future__ import annotations

import argparse

HELP = "list your latest submissions and scores"
DESCRIPTION = "Your latest submissions to the competition, newest first.\n\nexample:  fathom kaggle submissions -n 10"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    add_slug_argument(p)
    p.add_argument("-n", type=int, default=20, help="how many (default 20)")


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle.competition import submissions_text

    print(submissions_text(kaggle_api.connect(), args.competition, args.n))
    return 0
