from __future__ import annotations

import argparse

HELP = "push kernels/<name>/ to Kaggle and run it"
DESCRIPTION = "example:  fathom kernel push fathom-predict"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="kernel folder name under --root, or a path to the folder")
    p.add_argument("--root", default="kernels", help="parent folder (default kernels)")
    p.add_argument("--timeout", type=int, help="maximum run time in seconds")


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import kernels

    folder = kernels.kernel_folder(args.name, args.root)  # fails before connecting
    kernels.push(kaggle_api.connect(), folder, args.timeout)
    return 0
