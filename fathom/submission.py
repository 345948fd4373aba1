"""Write, read and validate a submission CSV: `id,categories,osd`.

The scorer splits `categories` on single spaces and compares strings, so ids must be plain
integers separated by one space ("1.0", "[1, 2]" or a double space score nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio
from fathom.errors import FathomError
from fathom.metrics import K

HEADER = ["id", "categories", "osd"]
_PLAIN_INT = re.compile(r"^[1-9][0-9]*$")


def rank_categories(probs: np.ndarray, category_ids: Sequence[int], k: int = K) -> list[list[int]]:
    """Each row's k most probable category ids, best first (ties: lower column first)."""
    probs = np.asarray(probs)
    ids = np.asarray(category_ids)
    if probs.ndim != 2 or probs.shape[1] != len(ids):
        raise ValueError(f"probabilities of shape {probs.shape} for {len(ids)} categories")
    top = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, len(ids))]
    return [[int(c) for c in ids[row]] for row in top]


def make_submission(
    ids: Sequence[str], probs: np.ndarray, category_ids: Sequence[int], osd: Sequence[float]
) -> pd.DataFrame:
    """A submission frame from a probability matrix and per-image osd scores."""
    osd = np.asarray(osd, dtype=np.float64)
    if len(ids) != len(probs) or len(ids) != len(osd):
        raise ValueError(f"{len(ids)} ids, {len(probs)} probability rows, {len(osd)} osd scores")
    ranked = rank_categories(probs, category_ids)
    return pd.DataFrame(
        {
            "id": list(ids),
            "categories": [" ".join(str(c) for c in row) for row in ranked],
            "osd": np.clip(osd, 0.0, 1.0),
        }
    )


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based line in the CSV file (the header is line 1); 0 for whole-file problems
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def read_submission(path: str | Path) -> pd.DataFrame:
    """A submission CSV read as strings, exactly as the scorer sees it."""
    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise FathomError(f"{path}: cannot read as CSV ({exc})") from None


def validate(
    frame: pd.DataFrame, eval_ids: Collection[str], known_categories: Collection[int], k: int = K
) -> list[Problem]:
    """Every reason the scorer would reject or silently mis-score this submission."""
    problems: list[Problem] = []
    if list(frame.columns) != HEADER:
        return [
            Problem(
                1, f"header must be `{','.join(HEADER)}`, got `{','.join(map(str, frame.columns))}`"
            )
        ]
    expected = set(eval_ids)
    known = {str(int(c)) for c in known_categories}
    seen: dict[str, int] = {}
    for i, (uid, cats, osd) in enumerate(frame[HEADER].itertuples(index=False, name=None)):
        line = i + 2
        uid = str(uid)
        if uid in seen:
            problems.append(Problem(line, f"id {uid} appears again (first on line {seen[uid]})"))
        else:
            seen[uid] = line
        if uid not in expected:
            problems.append(Problem(line, f"id {uid!r} is not an eval image"))
        problems += [Problem(line, m) for m in _category_problems(str(cats), known, k)]
        try:
            value = float(osd)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            problems.append(Problem(line, f"osd {osd!r} is not a number in [0, 1]"))
    missing = expected - set(seen)
    if missing:
        example = sorted(missing)[0]
        problems.append(Problem(0, f"{len(missing)} eval image(s) missing, e.g. {example}"))
    return problems


def _category_problems(cats: str, known: set[str], k: int) -> list[str]:
    if cats == "":
        return ["categories is empty"]
    tokens = cats.split(" ")
    out = []
    if "" in tokens:
        out.append(f"categories {cats!r} has an empty guess (a leading, trailing or double space)")
    bad = [t for t in tokens if t and not _PLAIN_INT.match(t)]
    if bad:
        out.append(f"category {bad[0]!r} is not a plain integer id")
    unknown = [t for t in tokens if _PLAIN_INT.match(t) and t not in known]
    if unknown:
        out.append(f"category {unknown[0]} is not a known category id")
    dups = sorted({t for t in tokens if t and tokens.count(t) > 1})
    if dups:
        out.append(f"category {dups[0]} is listed more than once")
    if len(tokens) > k:
        out.append(f"{len(tokens)} categories listed, at most {k} are scored")
    return out


def write_submission(
    path: str | Path,
    frame: pd.DataFrame,
    eval_ids: Collection[str],
    known_categories: Collection[int],
    *,
    overwrite: bool = False,
) -> Path:
    """Validate, then write atomically. Refuses to replace an existing file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FathomError(f"{path}: already exists (pass --overwrite, or choose another name)")
    as_text = frame.astype({"osd": float}).assign(osd=lambda f: f["osd"].map(lambda v: f"{v:.6f}"))
    problems = validate(as_text.astype(str), eval_ids, known_categories)
    if problems:
        raise FathomError(f"submission not written, it would fail validation: {problems[0]}")
    return fileio.write_csv(path, as_text)
