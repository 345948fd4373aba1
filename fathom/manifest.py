"""The manifest beside every submission: what produced it, so it can be reproduced and trusted.

`submissions/<name>.json` records the experiments and checkpoints used (with SHA-256 of each
checkpoint), the ensemble method and weights, the label-set thresholds, the osd scorer with
its estimated sAUC, the CV MAP@20 and the time it was written.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from fathom import __version__, fileio
from fathom.errors import FathomError

REQUIRED = ("name", "created_utc", "csv", "experiments", "ensemble", "thresholds", "osd", "cv")


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(
    name: str,
    csv_path: str | Path,
    competition: str | Path,
    experiments: list[dict],
    tuning: dict,
    osd_scorer: str,
    n_rows: int,
    now: datetime | None = None,
) -> dict:
    """The manifest dict. `experiments`: {name, path, weight, cv_map20, checkpoints: [paths]};
    `tuning` is what `fathom tune` wrote (ensemble, thresholds, osd)."""
    now = now or datetime.now(timezone.utc)
    ens = tuning["ensemble"]
    osd_info = tuning.get("osd", {})
    simulated = osd_info.get("simulated_sauc", {}) or {}
    estimated = simulated.get(osd_scorer)
    cv_map20 = ens["map20"][ens["method"]]
    return {
        "name": name,
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fathom_version": __version__,
        "csv": str(csv_path),
        "csv_sha256": sha256(csv_path) if Path(csv_path).is_file() else None,
        "n_rows": int(n_rows),
        "competition": str(competition),
        "experiments": [
            {
                **{k: v for k, v in e.items() if k != "checkpoints"},
                "checkpoints": [
                    {"path": str(p), "sha256": sha256(p)} for p in e.get("checkpoints", [])
                ],
            }
            for e in experiments
        ],
        "ensemble": {"method": ens["method"], "weights": ens["weights"], "cv_map20": ens["map20"]},
        "thresholds": tuning["thresholds"],
        "osd": {
            "scorer": osd_scorer,
            "estimated_sauc": estimated,
            "simulated_sauc": simulated,
            "holdout_runs": osd_info.get("holdout_runs", []),
            "holdout_categories": osd_info.get("holdout_categories", []),
        },
        "cv": {
            "map20": cv_map20,
            "estimated_score": None if estimated is None else (cv_map20 + estimated) / 2.0,
        },
        "tune_file": tuning.get("path"),
    }


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
