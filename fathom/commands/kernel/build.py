from __future__ import annotations

import argparse

HELP = "write kernels/<name>/ (metadata + script)"
DESCRIPTION = (
    "Write a kernel folder. example:  fathom kernel build fathom-predict --tune runs/tune-ab.json"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    p.add_argument("name", help="kernel slug: 5-50 lowercase letters, digits and dashes")
    p.add_argument(
        "--kind",
        choices=["predict", "train", "prior"],
        default="predict",
        help="what the kernel does (default predict)",
    )
    p.add_argument(
        "--tune",
        help="predict: the `fathom tune` file (uploaded with upload-weights --tune); its experiments are the runs",
    )
    p.add_argument(
        "--run",
        action="append",
        default=[],
        dest="runs",
        help="predict: run name inside the dataset (default: the --tune file's experiments)",
    )
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
    p.add_argument(
        "--n-folds",
        type=int,
        help="train: folds 0..N-1, two per kernel (one per T4): ceil(N/2) kernels",
    )
    p.add_argument("--fold", type=int, help="train: build the kernel of this fold only")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        dest="extra_args",
        help="extra argument for the last command, `fathom submit` or `fathom train` (repeatable)",
    )
    p.add_argument("--cpu", action="store_true", help="no GPU")
    p.add_argument(
        "--machine-shape",
        default="NvidiaTeslaT4",
        help="Kaggle accelerator (default NvidiaTeslaT4: two T4s, one fold each); "
        "NvidiaTeslaP100 only with --torch-build (Kaggle's torch has no sm_60 kernels)",
    )
    p.add_argument(
        "--torch-build",
        metavar="FILE.whl",
        help="a torch wheel inside the weights dataset that the kernel installs ahead of the "
        "image's (e.g. one with sm_60 kernels for a P100)",
    )
    p.add_argument("--public", action="store_true", help="make the kernel public (default private)")
    p.add_argument("--out", default="kernels", help="parent folder (default kernels)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace kernel folders that already exist"
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=12.0,
        metavar="HOURS",
        help="warn when a kernel's estimated run time exceeds this (default 12: Kaggle's GPU "
        "session limit)",
    )
    p.add_argument(
        "--speed-ratio",
        type=float,
        default=1.0,
        help="how many times faster Kaggle's GPU is than the machine the runs trained on "
        "(scales the estimate; default 1)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.errors import FathomError
    from fathom.kaggle import estimate, kernels

    if not (args.time_limit > 0 and args.speed_ratio > 0):  # nan too
        raise FathomError("--time-limit and --speed-ratio must be positive")

    specs = kernels.specs(args.name, **{k: getattr(args, k) for k in kernels.SPEC_OPTIONS})
    for spec in specs:  # every folder is checked before the first is written
        spec.check()
        kernels.check_replaceable(Path(args.out) / spec.name, args.overwrite)
    for spec in specs:
        folder = kernels.build(spec, Path(args.out), overwrite=args.overwrite)
        print(
            f"wrote {folder}/ ({spec.kind} kernel {spec.owner}/{spec.name}; datasets: {spec.weights_dataset})"
        )
        guess = estimate.for_kernel(spec, args.tune, args.speed_ratio)
        print("  run time: " + guess.line(spec.name, args.time_limit))
    return 0
