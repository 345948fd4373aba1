from __future__ import annotations

import argparse

HELP = "download a kernel's outputs"
DESCRIPTION = "example:  fathom kernel output me/fathom-predict --out kernels/fathom-predict/output"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kernel", help="OWNER/NAME")
    p.add_argument("--out", help="folder (default kernels/<NAME>/output)")


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import kernels

    kernels.output(kaggle_api.connect(), args.kernel, kernels.output_folder(args.kernel, args.out))
    return 0
