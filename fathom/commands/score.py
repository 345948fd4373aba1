from __future__ import annotations

import argparse

HELP = "score a submission against a truth file: MAP@20, sAUC, score (or accuracy, macro F1)"
DESCRIPTION = """Score SUBMISSION (id,categories,osd) against TRUTH (id,categories,osd with the true
ids space-separated and osd 1 for out-of-sample), as the competition does: MAP@20 over
images, sAUC = 2*AUC - 1 of osd, and score = (sAUC + MAP@20) / 2. Categories are compared
as strings, as the real scorer does. An image missing from the submission scores 0.

A single-label truth (`id,label`, e.g. a synthetic folder dataset's hidden/test_truth.csv)
scores an `id,label` submission by accuracy and macro F1 instead.

A train.csv competition's submission (fathom synth --kind csv) is scored by the competition's
metric (competition.toml) against a truth in the submission's format; the competition is
--comp, or the one the submission's manifest names, or the folder holding the truth's hidden/.

example:  fathom score submissions/prior.csv --truth data/synth/hidden/eval_truth.csv --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="submission CSV")
    p.add_argument(
        "--truth", required=True, help="truth CSV (a synthetic competition's hidden/eval_truth.csv)"
    )
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--comp", help="the train.csv competition (default: the manifest's)")


def run(args: argparse.Namespace) -> int:
    import json

    from fathom.score import format_scores, score_files

    result = score_files(args.submission, args.truth, args.comp)
    print(json.dumps(result) if args.json else format_scores(result))
    return 0
