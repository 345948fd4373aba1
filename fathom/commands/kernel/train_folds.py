from __future__ import annotations

import argparse

HELP = "inside a training kernel: train some folds, one per GPU"
DESCRIPTION = """What a training kernel runs (`fathom kernel build --kind train` writes it into the
script): `fathom train CONFIG key=value ... --fold K` for each of --folds, at once on two GPUs
(Kaggle's T4 x2: `fathom train --gpus 0,1`), in turn on one GPU or on the CPU. Each fold is an
ordinary run folder fold, resumable by running the same command again.

example:  fathom kernel train-folds configs/effb0.toml folds=folds/mlskf5.csv --folds 0,1 --name effb0"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.cli import IntermixedParser

    p.__class__ = IntermixedParser  # overrides may come after the options
    p.add_argument("config", help="experiment config: a .toml path")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--folds", required=True, help="the folds to train, e.g. 0,1")
    p.add_argument("--name", help="run name (default: the config file's name)")
    p.add_argument("--runs", default="runs", help="folder of runs (default runs)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.kaggle.kernel_train import parse_folds, train_folds

    name = args.name or Path(args.config).stem
    run_dir = train_folds(
        args.config, list(args.overrides), name, args.runs, parse_folds(args.folds)
    )
    print(f"trained folds {args.folds} of {run_dir}")
    return 0
