"""Competition files down, submissions up: the Kaggle calls, with the checks around them.

Every function takes `api` (a `KaggleApi` from `fathom.kaggle.api.connect`, or a stand-in in
tests) and does its file work here, so the calls Kaggle sees are few and exact.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from fathom import fileio
from fathom.errors import FathomError
from fathom.kaggle.api import COMPETITION, kaggle_errors

# What `kaggle competitions download -c fathomnet-out-of-sample-detection` must unpack.
EXPECTED_FILES = {
    COMPETITION: (
        "category_key.csv",
        "multilabel_classification/train.csv",
        "object_detection/train.json",
        "object_detection/eval.json",
        "sample_submission.csv",
    )
}


def missing_files(dest: Path, competition: str) -> list[str]:
    return [name for name in EXPECTED_FILES.get(competition, ()) if not (dest / name).is_file()]


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unzip `archive` into `dest`; refuse the whole archive if any member would land outside.

    Members are checked before anything is written (an absolute name, a `..` part, a drive
    letter or a symlink entry is refused), then each is written atomically.
    """
    dest = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise FathomError(
            f"{archive}: not a zip archive (a partial download? rerun with --force)"
        ) from None
    with zf:
        members = []
        for info in zf.infolist():
            name = info.filename
            pure = PurePosixPath(name.replace("\\", "/"))
            if pure.is_absolute() or ".." in pure.parts or ":" in name or "\x00" in name:
                raise FathomError(
                    f"{archive}: member {name!r} would land outside {dest}; nothing extracted"
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise FathomError(
                    f"{archive}: member {name!r} is a symbolic link; nothing extracted"
                )
            target = dest / pure
            if not target.resolve().is_relative_to(dest):
                raise FathomError(
                    f"{archive}: member {name!r} would land outside {dest}; nothing extracted"
                )
            members.append((info, target))
        written = []
        for info, target in members:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src, fileio.atomic_path(target) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            written.append(target)
    return written


def download_competition(api: Any, competition: str, dest: str | Path, force: bool = False) -> Path:
    """Fetch the competition's archive into `dest`, unzip it safely, check the expected files."""
    dest = Path(dest)
    if not force and EXPECTED_FILES.get(competition) and not missing_files(dest, competition):
        print(f"{dest}: the competition files are already there (pass --force to fetch again)")
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with kaggle_errors(f"download {competition}", api, competition):
        api.competition_download_files(competition, path=str(dest), force=force, quiet=False)
    archive = dest / f"{competition}.zip"
    if not archive.is_file():
        raise FathomError(f"{archive}: Kaggle reported success but wrote no archive")
    written = safe_extract(archive, dest)
    print(f"{archive}: extracted {len(written)} files into {dest}")
    missing = missing_files(dest, competition)
    if missing:
        raise FathomError(
            f"{dest}: {missing[0]} missing after unzipping ({len(missing)} expected file(s) missing)"
        )
    return dest


# --- submissions -------------------------------------------------------------------------


def read_manifest(submission: Path) -> dict:
    """The manifest beside a submission (`submissions/<name>.json`), or {} if there is none."""
    path = submission.with_suffix(".json")
    if not path.is_file():
        return {}
    data = fileio.read_json(path)
    return data if isinstance(data, dict) else {}


def submission_comp_dir(submission: Path, comp_dir: str | None = None) -> str:
    """The competition folder to validate `submission` against: `comp_dir`, else the one its
    manifest names; FathomError when neither says."""
    comp = comp_dir or read_manifest(Path(submission)).get("competition")
    if not comp:
        raise FathomError(f"{submission}: no manifest naming its competition folder; pass --comp")
    return comp


def _number(value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def manifest_cv(manifest: dict) -> str | None:
    """The CV a manifest records, as text for the submission message, or None.

    `fathom submit` writes `"cv": {"map20": ..., "estimated_score": ...}`; a plain number
    under `cv`, `cv_score` or `score` is accepted too.
    """
    cv = manifest.get("cv")
    if isinstance(cv, dict) and _number(cv.get("map20")) is not None:
        text = f"CV MAP@20 {cv['map20']:.4f}"
        score = _number(cv.get("estimated_score"))
        return text + (f", est. score {score:.4f}" if score is not None else "")
    for key in ("cv", "cv_score", "score"):
        if _number(manifest.get(key)) is not None:
            return f"CV {manifest[key]:.4f}"
    return None


def submission_message(submission: Path, manifest: dict, extra: str | None = None) -> str:
    parts = [submission.stem, manifest_cv(manifest) or "CV unknown (no manifest score)"]
    if extra:
        parts.append(extra)
    return " | ".join(parts)[:500]  # Kaggle caps the description


def validate_for_upload(submission: Path, comp_dir: Path) -> int:
    """Validate against the competition's eval set; FathomError on the first problem. Returns rows."""
    from fathom.data import open_dataset
    from fathom.submission import validate_for

    problems, n_rows = validate_for(submission, open_dataset(comp_dir))
    if problems:
        raise FathomError(
            f"{submission}: not submitted, {len(problems)} problem(s); first: {problems[0]} "
            f"(`fathom validate` lists them all)"
        )
    return n_rows  # a valid file holds every eval image once


def submit(
    api: Any | None,
    submission: str | Path,
    comp_dir: str | Path,
    competition: str = COMPETITION,
    message: str | None = None,
    dry_run: bool = False,
) -> str:
    """Validate, then upload with the manifest's CV in the message. `api` unused when dry_run."""
    submission = Path(submission)
    rows = validate_for_upload(submission, Path(comp_dir))
    manifest = read_manifest(submission)
    full_digest = hashlib.sha256(submission.read_bytes()).hexdigest()
    recorded = manifest.get("csv_sha256")
    if recorded and recorded != full_digest:
        raise FathomError(
            f"{submission.with_suffix('.json')}: describes another file (its csv_sha256 differs "
            f"from {submission}'s), so its CV would be wrong in the message; not submitted"
        )
    text = submission_message(submission, manifest, message)
    digest = full_digest[:12]
    if dry_run:
        print(f"dry run: would submit {submission} ({rows} rows, sha256 {digest}) to {competition}")
        print(f"dry run: message: {text}")
        return text
    with kaggle_errors(f"submit to {competition}", api, competition):
        response = api.competition_submit(str(submission), text, competition, quiet=False)
    note = getattr(response, "message", "") or ""
    if note == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", object()):
        raise FathomError(f"submit to {competition}: the upload failed ({note})")
    print(f"submitted {submission} ({rows} rows, sha256 {digest}) to {competition}: {text}")
    if note:
        print(f"Kaggle: {note}")
    return text


def submissions_table(api: Any, competition: str = COMPETITION, n: int = 20) -> pd.DataFrame:
    """The latest `n` submissions as a table: date, file, status, public and private score, message."""
    with kaggle_errors(f"list submissions of {competition}", api, competition):
        rows = api.competition_submissions(competition, page_size=n) or []
    records = []
    for sub in rows[:n]:
        status = getattr(sub, "status", "")
        records.append(
            {
                "date": str(getattr(sub, "date", "") or "")[:19],
                "file": getattr(sub, "file_name", "") or "",
                "status": getattr(status, "name", str(status))
                .replace("SUBMISSION_STATUS_", "")
                .lower(),
                "public": getattr(sub, "public_score", None) or "",
                "private": getattr(sub, "private_score", None) or "",
                "message": getattr(sub, "description", "") or "",
            }
        )
    return pd.DataFrame(records, columns=["date", "file", "status", "public", "private", "message"])


def submissions_text(api: Any, competition: str = COMPETITION, n: int = 20) -> str:
    """`submissions_table` as text to print, or a line saying there are none yet."""
    table = submissions_table(api, competition, n)
    return table.to_string(index=False) if len(table) else f"no submissions to {competition} yet"
