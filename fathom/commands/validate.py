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

example:  fathom validate submissions/prior.csv --eval data/synth/object_detection/eval.json
example:  fathom validate submissions/fish.csv --folder data/fish"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="submission CSV")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--eval", dest="eval_json", help="the competition's object_detection/eval.json"
    )
    which.add_argument(
        "--folder", help="a single-label folder dataset (train/<class>/..., test/...)"
    )
    p.add_argument(
        "--max-problems", type=int, default=20, help="print at most this many (default 20)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.data.coco import _coco_images, _read_coco
    from fathom.submission import read_submission, validate

    if args.folder:
        problems, n_images = _folder_problems(args.submission, args.folder)
        return _report(args, problems, n_images)
    path = Path(args.eval_json)
    data = _read_coco(path)
    eval_ids = set(_coco_images(path, data)["id"])
    known = {int(float(c["id"])) for c in data.get("categories", [])}
    if not known:
        from fathom.errors import FathomError

        raise FathomError(f"{path}: no `categories` list to check category ids against")
    return _report(args, validate(read_submission(args.submission), eval_ids, known), len(eval_ids))


def _folder_problems(submission, folder) -> tuple[list, int]:
    from fathom.data.imagefolder import open_folder, read_classes, read_folder_split
    from fathom.errors import FathomError
    from fathom.label_submission import validate_labels
    from fathom.submission import read_submission

    ds = open_folder(folder)
    classes = read_classes(ds)
    test = read_folder_split(ds, "test", classes)
    if test.empty:
        raise FathomError(f"{folder}: no test/ folder to check the submission against")
    return validate_labels(read_submission(submission), test["id"], classes["name"]), len(test)


def _report(args, problems, n_images: int) -> int:
    if not problems:
        what = "eval" if args.eval_json else "test"
        print(f"{args.submission}: valid ({n_images} {what} images)")
        return 0
    for problem in problems[: args.max_problems]:
        print(f"{args.submission}: {problem}")
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more")
    print(f"{args.submission}: INVALID, {len(problems)} problem(s)")
    return 1
