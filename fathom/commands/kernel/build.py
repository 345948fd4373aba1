from __future__ import annotations

import argparse

HELP = "write kernels/<name>/ (metadata + script)"
DESCRIPTION = (
    "Write a kernel folder. example:  fathom kernel build fathom-predict --tune runs/tune-ab.json"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    p.add_argument("name", help="kernel slug: 5-50 lowercase letters, digits and dashes")
    p.add_argument("--kind", choices=["predict", "train", "prior"], default="predict",
                   help="what the kernel does (default predict)")  # fmt: skip
    p.add_argument(
        "--tune",
        help="predict: the `fathom tune` file (uploaded with upload-weights --tune); its experiments are the runs",
    )
    p.add_argument("--run", action="append", default=[], dest="runs",
                   help="predict: run name inside the dataset (default: the --tune file's)")  # fmt: skip
    p.add_argument(
        "--config",
        help="train: config file name inside the dataset's configs/ (upload-weights --config)",
    )
    p.add_argument("--dataset", help="weights dataset OWNER/SLUG (default <owner>/fathom-weights)")
    p.add_argument(
        "--owner", help="your Kaggle user name (default from KAGGLE_USERNAME or kaggle.json)"
    )
    add_slug_argument(p)
    p.add_argument(
        "--images-dataset",
        help="OWNER/SLUG of a dataset holding the images, if the competition has none",
    )
    p.add_argument("--folds-file", help="train: folds CSV name inside the dataset's folds/")
    p.add_argument("--n-folds", type=int,
                   help="train: folds 0..N-1, two per kernel (one per T4): ceil(N/2) kernels")  # fmt: skip
    p.add_argument("--fold", type=int, help="train: build the kernel of this fold only")
    p.add_argument("--arg", action="append", default=[], dest="extra_args",
                   help="extra argument for `fathom submit` or `fathom train` (repeatable)")  # fmt: skip
    p.add_argument("--cpu", action="store_true", help="no GPU")
    p.add_argument(
        "--machine-shape",
        default="NvidiaTeslaT4",
        help="Kaggle accelerator (default NvidiaTeslaT4: two T4s, one fold each); "
        "NvidiaTeslaP100 only with --torch-build (Kaggle's torch has no sm_60 kernels)",
    )
    p.add_argument(
        "--torch-build", metavar="FILE.whl",
        help="a torch wheel in the weights dataset, installed first (e.g. sm_60 for a P100)",
    )  # fmt: skip
    p.add_argument("--public", action="store_true", help="make the kernel public (default private)")
    p.add_argument("--out", default="kernels", help="parent folder (default kernels)")
    p.add_argument("--overwrite", action="store_true", help="replace existing kernel folders")
    p.add_argument(
        "--time-limit", type=float, default=12.0, metavar="HOURS",
        help="warn when a kernel's estimated run time exceeds this (default 12: Kaggle's GPU limit)",
    )  # fmt: skip
    p.add_argument(
        "--speed-ratio", type=float, default=1.0,
        help="how many times faster Kaggle's GPU is than the runs' machine (scales the estimate)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from fathom.kaggle import kernels

    options = {k: getattr(args, k) for k in kernels.SPEC_OPTIONS}
    kernels.build_kernels(
        args.name, args.out, args.overwrite, args.time_limit, args.speed_ratio, **options
    )
    return 0
