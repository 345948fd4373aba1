from __future__ import annotations

import argparse

HELP = "compare runs side by side: scores, epochs, training time and history plots"
DESCRIPTION = """Put finished runs side by side. For each RUN folder (runs/<exp>/), score its
out-of-fold predictions against the labels of the dataset its config names (or --data):
single-label runs get accuracy, top-3 accuracy and macro precision / recall / F1; multi-label
runs get MAP@20. Beside them: epochs trained and training time from history.csv.

Writes to OUT (default compare/): compare.csv (the table), history.png (every numeric
history.csv column, one panel each, the runs overlaid: one fold of each run, the first it
has, named in the legend) and, per single-label run, <run>/confusion.png,
<run>/per_class.csv and <run>/most_confused.csv (a multi-label run gets none: its images
have no one predicted class).

example:  fathom compare runs/scratch_cnn runs/effnet_stage1 runs/effnet_stage2"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders (runs/<exp>/)")
    p.add_argument(
        "--data", help="dataset to score against (default: the `competition` in each run's config)"
    )
    p.add_argument(
        "--out", default="compare", help="folder for the table and plots (default compare)"
    )
    p.add_argument(
        "--top", type=int, default=3, help="most confused pairs printed per run (default 3)"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.report import compare_runs, format_table

    table, notes = compare_runs(args.runs, args.out, args.data, args.top)
    print(format_table(table))
    for note in notes:
        print(note)
    # only single-label runs get a confusion matrix (a multi-label image has no one class)
    single = table["run"][table["accuracy"].notna()].tolist() if "accuracy" in table else []
    wrote = f"wrote {args.out}/compare.csv and {args.out}/history.png"
    if single:
        wrote += (
            f"; confusion matrices: {', '.join(f'{args.out}/{r}/confusion.png' for r in single)}"
        )
    print(wrote)
    return 0
