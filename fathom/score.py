"""Score a submission file against a truth file, as the competition's scorer does."""

from __future__ import annotations

from pathlib import Path

from fathom.errors import FathomError
from fathom.metrics import K, competition_score, map_at_k, sauc
from fathom.submission import read_submission


def score_frames(sub, truth) -> dict:
    """Both frames hold strings; truth ids missing from the submission score AP 0 and osd 0."""
    for name, frame in (("submission", sub), ("truth", truth)):
        missing = {"id", "categories", "osd"} - set(frame.columns)
        if missing:
            raise FathomError(f"{name} lacks column(s) {', '.join(sorted(missing))}")
    by_id = dict(zip(sub["id"], zip(sub["categories"], sub["osd"], strict=True), strict=False))
    predicted, actual, flags, osd = [], [], [], []
    for uid, cats, flag in zip(truth["id"], truth["categories"], truth["osd"], strict=True):
        guess, score = by_id.get(uid, ("", "0"))
        predicted.append(str(guess).split(" "))
        actual.append(set(str(cats).split()))
        flags.append(int(float(flag)))
        try:
            osd.append(float(score))
        except ValueError:
            raise FathomError(f"submission osd {score!r} for {uid} is not a number") from None
    map20 = map_at_k(predicted, actual, K)
    try:
        s = sauc(flags, osd)
    except ValueError as exc:
        raise FathomError(str(exc)) from None
    return {"map20": map20, "sauc": s, "score": competition_score(map20, s)}


def score_files(submission: str | Path, truth: str | Path) -> dict:
    return score_frames(read_submission(submission), read_submission(truth))
