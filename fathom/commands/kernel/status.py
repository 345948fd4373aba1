from __future__ import annotations

import argparse

HELP = "a kernel's state"
DESCRIPTION = "example:  fathom kernel status me/fathom-predict"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kernel", help="OWNER/NAME")


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import kernels

    kernels.status(kaggle_api.connect(), args.kernel)
    return 0
