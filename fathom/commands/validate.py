from __future__ import annotations

import argparse

HELP = "check a submission CSV the way the scorer reads it"
DESCRIPTION = """Check SUBMISSION against the eval set before you upload it: the header
`id,categories,osd`; every eval image exactly once and no other; categories as plain integer
ids separated by single spaces (the scorer compares strings: `1.0`, `[1, 2]` or a double
space score nothing); ids among the known categories; no duplicates in a row; at most 20;
osd a finite number in [0, 1]. Each problem is printed with its line; the exit status is 1
if there is any.

With --folder DATASET it checks a single-label submission `id,label` instead: every test
image of the folder dataset exactly once, each label a class name spelled as its train folder.

With neither, the submission's manifest (SUBMISSION with .json, which `fathom submit`
writes) names the competition: `fathom validate submissions/N.csv`. A train.csv competition's
submission must hold exactly sample_submission.csv's columns, ids and row order, with values
in its format (known class names; at most K guesses; numbers in probability columns).

example:  fathom validate submissions/prior.csv --eval data/synth/object_detection/eval.json
example:  fathom validate submissions/fish.csv --folder data/fish"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="submission CSV")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--eval", dest="eval_json", help="the competition's object_detection/eval.json"
    )
    which.add_argument(
        "--folder", help="a dataset folder of either kind (e.g. train/<class>/..., test/...)"
    )
    p.add_argument(
        "--max-problems", type=int, default=20, help="print at most this many (default 20)"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.submission import validate_eval_json, validate_for

    folder = args.folder
    if not folder and not args.eval_json:
        from fathom.errors import FathomError
        from fathom.formats import manifest_competition

        folder = manifest_competition(args.submission)
        if not folder:
            raise FathomError(
                f"{args.submission}: no manifest beside it names its competition; pass "
                "--folder DATASET or --eval eval.json"
            )
    if folder:
        from fathom.data import open_dataset

        problems, n_images = validate_for(args.submission, open_dataset(folder))
    else:
        problems, n_images = validate_eval_json(args.submission, args.eval_json)
    for problem in problems[: args.max_problems]:
        print(f"{args.submission}: {problem}")
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more")
    if problems:
        print(f"{args.submission}: INVALID, {len(problems)} problem(s)")
        return 1
    print(f"{args.submission}: valid ({n_images} {'test' if folder else 'eval'} images)")
    return 0
