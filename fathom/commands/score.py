from __future__ import annotations

import argparse

HELP = "score a submission against a truth file: MAP@20, sAUC, score"
DESCRIPTION = """Score SUBMISSION (id,categories,osd) against TRUTH (id,categories,osd with the true
ids space-separated and osd 1 for out-of-sample), as the competition does: MAP@20 over
images, sAUC = 2*AUC - 1 of osd, and score = (sAUC + MAP@20) / 2. Categories are compared
as strings, as the real scorer does. An image missing from the submission scores 0.

example:  fathom score submissions/prior.csv --truth data/synth/hidden/eval_truth.csv --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="submission CSV")
    p.add_argument(
        "--truth", required=True, help="truth CSV (a synthetic competition's hidden/eval_truth.csv)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object: map20, sauc, score")


def run(args: argparse.Namespace) -> int:
    import json

    from fathom.score import score_files

    result = score_files(args.submission, args.truth)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"MAP@20 {result['map20']:.4f}   sAUC {result['sauc']:.4f}   score {result['score']:.4f}"
        )
    return 0
