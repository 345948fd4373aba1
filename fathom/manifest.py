"""The manifest beside every submission: what produced it, so it can be reproduced and trusted.

`submissions/<name>.json` records the experiments and the files they read (with SHA-256 of each
checkpoint, eval.npz and kNN bank), the ensemble method and weights, the label-set thresholds, the osd scorer with
its estimated sAUC, the CV MAP@20 and the time it was written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fathom import __version__, fileio
from fathom.errors import FathomError
from fathom.osd import osd_estimate

REQUIRED = ("name", "created_utc", "csv", "experiments", "ensemble", "thresholds", "osd", "cv")


sha256 = fileio.sha256_file


def osd_summary(tuning: dict, scorer: str | None) -> dict:
    """The manifest's osd block. The estimate is the tuning's own (measured on rows that did
    not choose the scorer) when the submission uses the tuned scorer; for another scorer named
    at submit time, its simulated sAUC; for `domain` none: the simulation cannot rate it."""
    info = tuning.get("osd") or {}
    simulated = info.get("simulated_sauc", {}) or {}
    if scorer is None:
        estimated, basis = None, "no osd (single-label)"
    elif scorer == info.get("scorer") and "estimate" in info:
        estimated, basis = info.get("estimated_sauc"), info["estimate"]
    else:
        estimated, basis = osd_estimate(scorer, simulated, None, chosen=False)
    return {
        "scorer": scorer,
        "estimated_sauc": estimated,
        "estimate": basis,
        "simulated_sauc": simulated,
        "holdout_runs": info.get("holdout_runs", []),
        "holdout_categories": info.get("holdout_categories", []),
    }


def build_manifest(
    name: str,
    csv_path: str | Path,
    competition: str | Path,
    experiments: list[dict],
    tuning: dict,
    osd_scorer: str | None,
    n_rows: int,
    now: datetime | None = None,
) -> dict:
    """The manifest dict. `experiments`: {name, path, kind, weight, cv, checkpoints: [paths]};
    `tuning` is what `fathom tune` wrote (ensemble, thresholds, osd)."""
    now = now or datetime.now(UTC)
    ens = tuning["ensemble"]
    metric = ens.get("metric", "map20")
    cv_value = ens["scores"][ens["method"]]
    osd = osd_summary(tuning, osd_scorer)
    estimated = osd["estimated_sauc"]
    cv = {"metric": metric, "value": cv_value, metric: cv_value}
    if metric == "map20":
        cv["estimated_score"] = None if estimated is None else (cv_value + estimated) / 2.0
    return {
        "name": name,
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fathom_version": __version__,
        "csv": str(csv_path),
        "csv_sha256": sha256(csv_path) if Path(csv_path).is_file() else None,
        "n_rows": int(n_rows),
        "competition": str(competition),
        "experiments": _hashed_all(experiments),
        "ensemble": {
            "method": ens["method"],
            "weights": ens["weights"],
            "metric": metric,
            "cv": ens["scores"],
        },
        "thresholds": tuning["thresholds"],
        "osd": osd,
        "cv": cv,
        "tune_file": tuning.get("path"),
    }


def _hashed_all(members: list[dict]) -> list[dict]:
    """The members, each file hashed once: a run's kNN member reads the run's own checkpoints
    and eval.npz (hundreds of MB), and they are hashed at this one moment, not remembered."""
    digests: dict[str, str] = {}

    def file(path) -> dict:
        key = str(path)
        if key not in digests:
            digests[key] = sha256(path)
        return {"path": key, "sha256": digests[key]}

    return [_hashed(e, file) for e in members]


def _hashed(member: dict, file) -> dict:
    """A member with the SHA-256 (`file(path)`) of every file it read: checkpoints, and the
    eval predictions and kNN banks the submission was computed from (a later `fathom predict`
    or retraining would otherwise go unnoticed)."""
    out = {k: v for k, v in member.items() if k not in ("checkpoints", "eval_file", "banks")}
    out["checkpoints"] = [file(p) for p in member.get("checkpoints", [])]
    if member.get("eval_file"):
        out["eval"] = file(member["eval_file"])
    if "banks" in member:
        out["banks"] = [file(p) for p in member["banks"]]
    return out


def write_manifest(path: str | Path, manifest: dict, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FathomError(f"{path}: already exists (pass --overwrite, or choose another name)")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise ValueError(f"manifest lacks {', '.join(missing)}")
    return fileio.write_json(path, manifest)


def read_manifest(path: str | Path) -> dict:
    data = fileio.read_json(path, "no such manifest")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise FathomError(f"{path}: not a submission manifest (lacks {', '.join(missing)})")
    return data
