"""Submission files of both kinds: make, validate, write, read.

Multi-label (FathomNet), `id,categories,osd`: the scorer splits `categories` on single spaces
and compares strings, so ids must be plain integers separated by one space ("1.0", "[1, 2]"
or a double space score nothing); `osd` is a number in [0, 1].

Single-label (folder datasets), `id,label`: `id` is the test image's id as
`fathom.data.imagefolder` names it (its path relative to the dataset root, without extension,
e.g. `test/img_00042`); `label` is a class name, exactly as its train folder is spelled (a
scorer compares strings: `tilapia` is not `Tilapia`).

`validate_for(path, dataset)` picks the format from the dataset's kind (a train.csv
competition's four formats live in fathom/formats.py).
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
LABEL_HEADER = ["id", "label"]
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


def official_reader_problems(path: str | Path) -> list[Problem]:
    """What the competition's own metric trips on before it compares anything: it reads the
    CSV with pandas' default types, and then splits `categories` as text. A file in which every
    row lists exactly one category (or none) is read as numbers there, and the metric crashes;
    fathom reads every column as text, so only this second read sees it."""
    try:
        frame = pd.read_csv(path)
    except Exception:  # read_submission has already named what is wrong with the file
        return []
    problems = []
    if "categories" in frame.columns and pd.api.types.is_numeric_dtype(frame["categories"]):
        problems.append(
            Problem(
                0,
                "every row lists exactly one category, so the official metric (which reads the "
                "file with pandas' default types) reads `categories` as numbers and fails: list "
                "a second guess in at least one row (more guesses never lower MAP@20)",
            )
        )
    if "osd" in frame.columns and not pd.api.types.is_numeric_dtype(frame["osd"]):
        problems.append(Problem(0, "the official metric reads `osd` as text, not numbers"))
    return problems


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
        line, uid = i + 2, str(uid)
        problems += _id_problems(uid, line, seen, expected, "an eval image")
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


def _id_problems(uid: str, line: int, seen: dict, expected: set, what: str) -> list[Problem]:
    """A row's id: seen before (a duplicate), or not one of the images to predict."""
    out = []
    if uid in seen:
        out.append(Problem(line, f"id {uid} appears again (first on line {seen[uid]})"))
    else:
        seen[uid] = line
    if uid not in expected:
        out.append(Problem(line, f"id {uid!r} is not {what}"))
    return out


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


# --- single-label submissions: id,label


def make_label_submission(
    ids: Sequence[str], probs: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Each image's most probable class name (ties: the lower class index)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape != (len(ids), len(class_names)):
        raise ValueError(
            f"probabilities of shape {probs.shape} for {len(ids)} ids and {len(class_names)} classes"
        )
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({"id": list(ids), "label": names[probs.argmax(axis=1)]})


def validate_labels(
    frame: pd.DataFrame, test_ids: Collection[str], class_names: Collection[str]
) -> list[Problem]:
    """Every reason a scorer would reject or mis-score this submission, with its CSV line."""
    if list(frame.columns) != LABEL_HEADER:
        return [
            Problem(
                1,
                f"header must be `{','.join(LABEL_HEADER)}`, got `{','.join(map(str, frame.columns))}`",
            )
        ]
    expected, known = set(test_ids), set(class_names)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, (uid, label) in enumerate(frame[LABEL_HEADER].itertuples(index=False, name=None)):
        line, uid, label = i + 2, str(uid), str(label)
        problems += _id_problems(uid, line, seen, expected, "a test image")
        if label == "":
            problems.append(Problem(line, "label is empty"))
        elif label not in known:
            near = [c for c in known if c.lower() == label.strip().lower()]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(Problem(line, f"label {label!r} is not a class{hint}"))
    missing = expected - set(seen)
    if missing:
        problems.append(
            Problem(0, f"{len(missing)} test image(s) missing, e.g. {sorted(missing)[0]}")
        )
    return problems


def write_label_submission(
    path: str | Path,
    frame: pd.DataFrame,
    test_ids: Collection[str],
    class_names: Collection[str],
    *,
    manifest: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate, then write the CSV (and `<path>.json` manifest, if given) atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FathomError(f"{path}: already exists (pass --overwrite, or choose another name)")
    problems = validate_labels(frame.astype(str), test_ids, class_names)
    if problems:
        raise FathomError(f"submission not written, it would fail validation: {problems[0]}")
    fileio.write_csv(path, frame[LABEL_HEADER])
    if manifest is not None:
        fileio.write_json(path.with_suffix(".json"), manifest)
    return path


# --- a train.csv competition's submission (its formats: fathom/formats.py)


def _token_problems(value: str, known: set[str], k: int | None, what: str) -> list[str]:
    if value == "":
        return [f"{what} is empty"]
    tokens = value.split(" ")
    out = []
    if "" in tokens:
        out.append(f"{what} {value!r} has an empty guess (a leading, trailing or double space)")
    unknown = [t for t in tokens if t and t not in known]
    if unknown:
        near = [c for c in known if c.lower() == unknown[0].strip().lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        out.append(f"{unknown[0]!r} is not a class{hint}")
    dups = sorted({t for t in tokens if t and tokens.count(t) > 1})
    if dups:
        out.append(f"{dups[0]!r} is listed more than once")
    if k is not None and len(tokens) > k:
        out.append(f"{len(tokens)} guesses listed, at most {k} are scored")
    return out


def validate_table(frame: pd.DataFrame, layout, test_ids: Sequence[str]) -> list[Problem]:
    """Every reason the competition would reject or mis-score this submission, with its line:
    the sample submission's header, its ids in its order, and each value in the format of
    `layout` (a `fathom.data.csvtable.Layout`)."""
    cols = list(layout.submission_columns)
    if list(map(str, frame.columns)) != cols:
        return [
            Problem(
                1,
                f"header must be `{','.join(cols)}` (as sample_submission.csv), got "
                f"`{','.join(map(str, frame.columns))}`",
            )
        ]
    frame = frame.astype(str)
    expected = list(test_ids)
    expected_set = set(expected)
    known = set(layout.classes) | ({layout.new_label} if layout.new_label else set())
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        line, uid = i + 2, row[0]
        found = _id_problems(uid, line, seen, expected_set, "a test image")
        problems += found
        if not found and i < len(expected) and uid != expected[i]:
            problems.append(
                Problem(
                    line, f"id {uid} where sample_submission.csv has {expected[i]} (keep its order)"
                )
            )
        values = row[1:]
        if layout.format == "onehot":
            for c, v in zip(cols[1:], values, strict=True):
                try:
                    ok = math.isfinite(float(v))
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(Problem(line, f"column {c}: {v!r} is not a finite number"))
        elif layout.format == "single":
            if values[0] not in layout.classes:
                problems += [
                    Problem(line, m) for m in _token_problems(values[0], known, 1, "label")
                ]
        else:
            k = layout.k if layout.format == "ranked" else None
            problems += [Problem(line, m) for m in _token_problems(values[0], known, k, cols[1])]
    missing = expected_set - set(seen)
    if missing:
        problems.append(
            Problem(0, f"{len(missing)} test image(s) missing, e.g. {sorted(missing)[0]}")
        )
    return problems


def validate_for(path: str | Path, dataset) -> tuple[list[Problem], int]:
    """(problems, number of images to predict) of a submission file against a dataset of
    either kind (`fathom.data.Dataset`)."""
    frame = read_submission(path)
    cats = dataset.categories()
    ev = dataset.split("eval", require_images=False, categories=cats)
    if ev.empty:
        raise FathomError(f"{dataset.root}: no eval (test) images to check the submission against")
    if dataset.kind == "csv":  # the sample submission's columns, ids, order and format
        return validate_table(frame, dataset.layout(), ev["id"].tolist()), len(ev)
    if dataset.task == "singlelabel":
        return validate_labels(frame, ev["id"], cats["name"]), len(ev)
    problems = validate(frame, ev["id"], cats["id"])
    return problems + (official_reader_problems(path) if not problems else []), len(ev)


def validate_eval_json(path: str | Path, eval_json: str | Path) -> tuple[list[Problem], int]:
    """(problems, number of eval images) of a multi-label submission against a COCO eval.json.
    The known category ids are its `categories` list or, where it has none, the competition's
    category_key.csv (beside its object_detection/ folder)."""
    from fathom.data.coco import coco_images, open_competition, read_categories, read_coco

    eval_json = Path(eval_json)
    data = read_coco(eval_json)
    eval_ids = set(coco_images(eval_json, data)["id"])
    known = set()
    for i, cat in enumerate(data.get("categories") or []):
        try:
            known.add(int(float(cat["id"])))
        except (TypeError, KeyError, ValueError):
            raise FathomError(f"{eval_json}, categories[{i}]: no integer `id`") from None
    if not known:
        key = eval_json.resolve().parent.parent / "category_key.csv"
        if not key.is_file():
            raise FathomError(
                f"{eval_json}: no `categories` list, and no {key} to take the category ids from"
            )
        known = set(read_categories(open_competition(key.parent))["id"])
    problems = validate(read_submission(path), eval_ids, known)
    return problems + (official_reader_problems(path) if not problems else []), len(eval_ids)
