from __future__ import annotations

import argparse

HELP = "check a submission CSV the way the scorer reads it"
DESCRIPTION = """Check SUBMISSION against the eval set before you upload it: the header
`id,categories,osd`; every eval image exactly once and no other; categories as plain integer
ids separated by single spaces (the scorer compares strings: `1.0`, `[1, 2]` or a double
space score nothing); ids among the known categories; no duplicates in a row; at most 20;
osd a finite number in [0, 1]. Each problem is printed with its line; the exit status is 1
if there is any.

example:  fathom validate submissions/prior.csv --eval data/synth/object_detection/eval.json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="submission CSV")
    p.add_argument(
        "--eval",
        required=True,
        dest="eval_json",
        help="the competition's object_detection/eval.json",
    )
    p.add_argument(
        "--max-problems", type=int, default=20, help="print at most this many (default 20)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.competition import _coco_images, _read_coco
    from fathom.submission import read_submission, validate

    path = Path(args.eval_json)
    data = _read_coco(path)
    eval_ids = set(_coco_images(path, data)["id"])
    known = {int(float(c["id"])) for c in data.get("categories", [])}
    if not known:
        from fathom.errors import FathomError

        raise FathomError(f"{path}: no `categories` list to check category ids against")
    problems = validate(read_submission(args.submission), eval_ids, known)
    if not problems:
        print(f"{args.submission}: valid ({len(eval_ids)} eval images)")
        return 0
    for problem in problems[: args.max_problems]:
        print(f"{args.submission}: {problem}")
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more")
    print(f"{args.submission}: INVALID, {len(problems)} problem(s)")
    return 1
