"""Runs' weights as a Kaggle dataset, with a wheel of fathom so kernels install it offline.

The staged folder (default `kernels/datasets/<slug>/`):

    dataset-metadata.json            id, title, licenses, description (Kaggle reads it)
    fathom-weights.json              what is inside: runs, files with size and sha256, CV
    fathom-<version>-py3-none-any.whl
    <dist>-<version>-py3-none-any.whl  pure-Python dependencies a kernel may lack or find too
                                     old on Kaggle's image (fathom.kaggle.wheels)
    runs/<exp>/config.json, cv.json and other run-level JSON, fold<k>/best.pt, full/best.pt
    folds/<name>.csv                 when given (training kernels need the same folds)
    configs/<name>.toml              when given (what training kernels train)
    pretrained/                      when given: `fathom weights fetch`'s folder, an HF hub
                                     cache that training kernels read offline

Kaggle uploads sub-folders as zip archives (`dir_mode="zip"`); the kernel script accepts
either `runs/` or `runs.zip` (fathom.kaggle.kernel_template).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom import __version__, fileio
from fathom.errors import FathomError
from fathom.kaggle import wheels as kaggle_wheels
from fathom.kaggle.api import (
    CREDENTIALS_HINT,
    check_ref,
    default_owner,
    http_status,
    kaggle_errors,
)
from fathom.runs import open_run, read_tuning, run_members

MANIFEST = "fathom-weights.json"
# fathom's mark on a folder it staged: only such a folder, or a new or empty one, is staged
# into, and only the files its last manifest lists are ever removed from it. A dot-file, so
# uploads leave it out (`upload` passes it as an ignore pattern too).
STAGING_MARKER = ".fathom-staging"
TUNE_FILE = "tune.json"  # the `fathom tune` file a predict kernel's `fathom submit` reads


def check_dataset_id(dataset: str) -> tuple[str, str]:
    """(owner, slug) of OWNER/SLUG, by Kaggle's rules (a slug of at least 6 characters)."""
    return check_ref(dataset, "dataset")


def default_dataset(dataset: str | None = None) -> str:
    """`dataset`, else <your Kaggle user name>/fathom-weights; FathomError when neither is known."""
    if dataset:
        return dataset
    owner = default_owner()
    if not owner:
        raise FathomError(f"--dataset OWNER/SLUG needed ({CREDENTIALS_HINT})")
    return f"{owner}/fathom-weights"


def project_root() -> Path:
    """The source tree fathom is imported from (the wheel is built from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise FathomError(f"{root}: no pyproject.toml; build the wheel from a fathom checkout")
    return root


def build_wheel(out_dir: Path, root: Path | None = None) -> Path:
    """`pip wheel . --no-deps --no-build-isolation`: offline, with the setuptools already installed."""
    root = root or project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Build from a clean copy: setuptools reuses ./build/lib, where a module deleted from
        # the source would linger and ship in the wheel.
        src = Path(tmp) / "src"
        shutil.copytree(
            root / "fathom", src / "fathom", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        wheel_dir = Path(tmp) / "wheel"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
        ]
        result = subprocess.run(cmd + ["-w", str(wheel_dir)], capture_output=True, text=True)
        wheels = list(wheel_dir.glob("fathom-*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FathomError(f"building the fathom wheel failed: {last[0]}")
        for old in out_dir.glob("fathom-*.whl"):
            old.unlink()
        target = out_dir / wheels[0].name
        shutil.move(str(wheels[0]), target)
    return target


def _place(src: Path, dst: Path) -> None:
    """Hard-link when possible (checkpoints are large), else copy; never half a file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        with fileio.atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def claim_staging_folder(out: Path) -> None:
    """Make `out` fathom's staging folder: a new or empty folder is marked, a marked one is
    reused; anything else (a project, a home folder) is refused before a file is touched."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise FathomError(f"--out {out}: not a folder; give a new or empty folder to stage into")
    if out.is_dir() and not (out / STAGING_MARKER).is_file() and any(out.iterdir()):
        raise FathomError(
            f"--out {out}: holds files and is not a fathom staging folder (no {STAGING_MARKER});"
            " give a new or empty folder, nothing was changed"
        )
    if not (out / STAGING_MARKER).is_file():
        fileio.write_text(
            out / STAGING_MARKER,
            "staged by `fathom kaggle upload-weights`; it replaces only the files that"
            f" {MANIFEST} lists\n",
        )


def clear_last_staging(out: Path) -> None:
    """Remove the files the last staging listed in its manifest, and the folders that leaves
    empty; a file the user added to the folder stays, and no path leaves `out`."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return
    root = out.resolve()
    listed = fileio.read_json(manifest).get("files", [])
    for entry in listed if isinstance(listed, list) else []:
        rel = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            continue
        path = out / rel
        if not (path.is_file() or path.is_symlink()) or not path.parent.resolve().is_relative_to(
            root
        ):
            continue
        path.unlink()
        for parent in path.parents:  # the folders it leaves empty, up to `out`
            if parent == out or any(parent.iterdir()):
                break
            parent.rmdir()
    manifest.unlink()


def stage(
    runs: list[Path],
    dataset: str,
    out: Path,
    title: str | None = None,
    folds: list[Path] = (),
    tune: Path | None = None,
    configs: list[Path] = (),
    wheel: bool = True,
    license_name: str = "CC0-1.0",
    pretrained: Path | None = None,
    dep_wheels: list[Path] = (),
) -> dict:
    """Write the dataset folder (see the module docstring); returns the manifest."""
    owner, slug = check_dataset_id(dataset)
    title = title or f"fathom weights {slug}"[:50]
    if not 6 <= len(title) <= 50:
        raise FathomError(f"dataset title {title!r}: Kaggle wants 6-50 characters")
    if not runs and not configs and pretrained is None:
        raise FathomError(
            "nothing to upload: give run folders, or --config files for training kernels"
        )
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise FathomError(f"two runs share a folder name: {', '.join(names)}")
    placed: list[tuple[Path, Path]] = []
    for run in runs:
        for src in open_run(run).upload_files():
            placed.append((src, Path("runs") / run.name / src.relative_to(run)))
    for fold_csv in folds:
        if not fold_csv.is_file():
            raise FathomError(f"{fold_csv}: no such folds file")
        placed.append((fold_csv, Path("folds") / fold_csv.name))
    for config in configs:
        if not config.is_file():
            raise FathomError(f"{config}: no such config file")
        placed.append((config, Path("configs") / config.name))
    if pretrained is not None:
        from fathom.engine.pretrained import EXPORT_MANIFEST

        if not (pretrained / EXPORT_MANIFEST).is_file():
            raise FathomError(
                f"{pretrained}: no {EXPORT_MANIFEST}; fill it with `fathom weights fetch CONFIG... --out {pretrained}`"
            )
        for src in sorted(p for p in pretrained.rglob("*") if p.is_file()):
            placed.append((src, Path("pretrained") / src.relative_to(pretrained)))
    if tune is not None:
        tuning = read_tuning(tune, need=("experiments",))
        wanted = [e["name"] for e in run_members(tuning)]
        missing = [name for name in wanted if name not in names]
        if missing:
            raise FathomError(
                f"{tune}: experiment {missing[0]!r} is not among the uploaded runs ({', '.join(names)})"
            )
        placed.append((tune, Path(TUNE_FILE)))
    for dep in dep_wheels:  # top level, beside fathom's: Kaggle zips sub-folders
        placed.append((dep, Path(dep.name)))
    claim_staging_folder(out)
    clear_last_staging(out)  # what was dropped from the list must not linger
    for src, rel in placed:
        _place(src, out / rel)
    if wheel:
        placed.append((None, build_wheel(out).relative_to(out)))
    cv = {}
    for run in map(open_run, runs):
        try:
            if scores := run.cv():
                cv[run.name] = scores.get("map20")
        except (FathomError, AttributeError):  # a damaged cv.json must not stop an upload
            cv[run.name] = None
    manifest = {
        "fathom_version": __version__,
        "dataset": dataset,
        "runs": names,
        "cv_map20": cv,
        "files": [
            {
                "path": rel.as_posix(),
                "bytes": (out / rel).stat().st_size,
                "sha256": fileio.sha256_file(out / rel),
            }
            for _, rel in placed
        ],
    }
    fileio.write_json(out / MANIFEST, manifest)
    description = (
        "Weights and code for fathom kernels (generated by `fathom kaggle upload-weights`).\n\n"
        + "\n".join(f"- `{name}`: CV MAP@20 {cv.get(name)}" for name in names)
    )
    metadata = {
        "title": title,
        "id": f"{owner}/{slug}",
        "licenses": [{"name": license_name}],
        "description": description,
    }
    fileio.write_json(out / "dataset-metadata.json", metadata)
    return manifest


@dataclass(frozen=True)
class Staged:
    """A staged dataset folder, ready for `upload`."""

    dataset: str
    folder: Path
    manifest: dict
    notes: str

    def summary(self) -> str:
        files = self.manifest["files"]
        total = sum(f["bytes"] for f in files) / 1e6
        return f"staged {len(files)} files ({total:.1f} MB) for {self.dataset} in {self.folder}"


def default_notes(manifest: dict) -> str:
    """Version notes naming the runs and their CV (or the fathom version, with no runs)."""
    return "; ".join(
        [f"{r}: CV MAP@20 {manifest['cv_map20'].get(r)}" for r in manifest["runs"]]
        or [f"fathom {manifest['fathom_version']} for training kernels"]
    )


def stage_for_upload(
    runs: list,
    dataset: str | None = None,
    out: str | Path | None = None,
    title: str | None = None,
    folds: list = (),
    tune: str | Path | None = None,
    configs: list = (),
    notes: str = "",
    pretrained: str | Path | None = None,
    dep_wheels: bool = True,
) -> Staged:
    """`stage` with the command's defaults: the dataset (`default_dataset`), the folder
    (kernels/datasets/<slug>) and the notes (`default_notes`)."""
    dataset = default_dataset(dataset)
    _, slug = check_dataset_id(dataset)
    folder = Path(out) if out else Path("kernels") / "datasets" / slug
    manifest = stage(
        [Path(r) for r in runs],
        dataset,
        folder,
        title,
        folds=[Path(f) for f in folds],
        tune=Path(tune) if tune else None,
        configs=[Path(c) for c in configs],
        pretrained=Path(pretrained) if pretrained else None,
        dep_wheels=kaggle_wheels.runtime_wheels() if dep_wheels else (),
    )
    return Staged(dataset, folder, manifest, notes or default_notes(manifest))


def upload(api: Any, folder: Path, dataset: str, notes: str, public: bool = False) -> str:
    """Create the dataset if Kaggle does not have it, else add a version. Returns 'created'/'versioned'."""
    import requests

    exists = True
    with kaggle_errors(f"look up dataset {dataset}", api):
        try:
            api.dataset_status(dataset)
        except requests.HTTPError as exc:
            if http_status(exc) != 404:
                raise
            exists = False
    with kaggle_errors(f"upload dataset {dataset}", api):
        if exists:
            result = api.dataset_create_version(
                str(folder), notes, quiet=False, dir_mode="zip", ignore_patterns=[STAGING_MARKER]
            )
        else:
            result = api.dataset_create_new(
                str(folder),
                public=public,
                quiet=False,
                dir_mode="zip",
                ignore_patterns=[STAGING_MARKER],
            )
    error = getattr(result, "error", None)
    if error:
        raise FathomError(f"upload dataset {dataset}: Kaggle says: {error}")
    url = getattr(result, "url", "") or f"https://www.kaggle.com/datasets/{dataset}"
    action = "versioned" if exists else "created"
    print(
        f"{dataset}: {action} ({url}); Kaggle processes it for a few minutes before kernels see it"
    )
    return action
