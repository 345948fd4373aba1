from __future__ import annotations

import argparse

HELP = "show what fathom detects in a dataset folder (layout, format, metric, images)"
DESCRIPTION = """Open DATA as fathom's commands will and print what it found, so you can check it
before training: its kind and task; for a train.csv competition also the label format (single,
set, onehot or ranked), the id and label columns, the classes, the metric (from
competition.toml, or the format's default), the submission's columns and the image folders.
Every id of train.csv and sample_submission.csv must have its image; a missing one is named
with its file, line and column.

example:  fathom inspect data/cassava"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a competition or dataset folder of any kind")


def run(args: argparse.Namespace) -> int:
    from fathom.inspect import inspect_dataset

    print("\n".join(inspect_dataset(args.data)))
    return 0
